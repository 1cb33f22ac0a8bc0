//! Audits: running checks over a dataset batch by batch. `clean` holds the
//! plain predictions every other check compares against.

pub mod clean;
