//! The report loader on arbitrary bytes: the schema-version check, then the
//! typed report.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xai_audit::report::io::parse_report;

fuzz_target!(|data: &[u8]| {
    // `read_report` reads the file as UTF-8 text before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(report) = parse_report(text, Path::new("fuzz.json")) else {
        return;
    };
    // A report that loads can be written again and reads back.
    let json = serde_json::to_string(&report).expect("reports serialize");
    parse_report(&json, Path::new("round trip"))
        .unwrap_or_else(|e| panic!("the written report does not load: {e}"));
});
