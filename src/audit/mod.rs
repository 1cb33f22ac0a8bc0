//! Audits: a resolved plan (`crate::plan`) run over a dataset batch by
//! batch (`run`), reporting progress to a `crate::progress::Sink`; `clean` holds the plain
//! predictions every other check compares against; `gates` turns a report
//! into a CI verdict and `diff` compares two reports; `checkpoint` lets an
//! interrupted run resume; `text` is what the commands print.

pub mod checkpoint;
pub mod clean;
pub mod diff;
pub mod gates;
pub mod job;
pub mod run;
pub mod sanity;
pub mod text;
