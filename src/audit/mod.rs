//! Audits: a plan (`plan`) of checks run over a dataset batch by batch
//! (`run`), reporting progress to sinks (`sink`); `clean` holds the plain
//! predictions every other check compares against; `gates` turns a report
//! into a CI verdict and `diff` compares two reports; `checkpoint` lets an
//! interrupted run resume.

pub mod checkpoint;
pub mod clean;
pub mod diff;
pub(crate) mod entry;
pub mod gates;
pub mod job;
pub mod plan;
pub mod run;
pub mod sanity;
pub mod sink;
