//! Audits: a resolved plan (`crate::plan`) run over a dataset, as `job`
//! lays it out step by step, reporting progress to a
//! `crate::progress::Sink`. `clean` is the clean pass, made once, whose
//! inputs and logits every later step reuses; `run` the attacks on its
//! batches (or one shard of them); `sanity` the checks on the results;
//! `gates` turns a report into a CI verdict and `diff` compares two reports;
//! `checkpoint` lets an interrupted run resume; `scheduler` reads which
//! shard a process is from a Slurm array's or a Kubernetes Indexed Job's
//! variables, and `shards` checks the files a merge takes; `text` is what
//! the commands print.

pub mod checkpoint;
pub mod clean;
pub mod diff;
pub mod gates;
pub mod job;
pub mod run;
pub mod sanity;
pub mod scheduler;
pub mod shards;
pub mod text;
