//! The library knows no command line: no string literal in a library file
//! (every file under `src/` but the binary's `main.rs` and `cli.rs`) names a
//! flag such as `--resume`. A library error whose fix is a change of options
//! carries it typed (`xai_audit::error::Remedy`, `Opt`), and the binary words
//! it as its flag (`src/cli.rs`). Comments may name flags, and so may
//! another program's command line that the library prints (tf2onnx's).

use std::path::{Path, PathBuf};

use super::root;

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literals of Rust source `text` (plain, raw and byte strings),
/// each with the line it starts on; comments and char literals are skipped.
fn string_literals(text: &str) -> Vec<(usize, String)> {
    let c: Vec<char> = text.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    // Reads a plain string whose opening quote is at `i`; returns the index
    // after its closing quote.
    let plain = |mut i: usize, line: &mut usize, out: &mut Vec<(usize, String)>| {
        let start = *line;
        let mut s = String::new();
        i += 1;
        while i < c.len() && c[i] != '"' {
            if c[i] == '\\' {
                s.push(c[i]);
                i += 1;
            }
            if at(i) == '\n' {
                *line += 1;
            }
            s.push(at(i));
            i += 1;
        }
        out.push((start, s));
        i + 1
    };
    while i < c.len() {
        match c[i] {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if at(i + 1) == '/' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(c[i] == '\n');
                        i += 1;
                    }
                }
            }
            // A char literal ('x', '\n', '\u{2264}', '"'), or a lifetime.
            '\'' => {
                if at(i + 1) == '\\' {
                    i += 3;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == '\'' {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            '"' => i = plain(i, &mut line, &mut out),
            // A word, which may prefix a string: `r"…"`, `r#"…"#`, `b"…"`, `br"…"`.
            w if w.is_alphanumeric() || w == '_' => {
                let start = i;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let raw = (word == "r" || word == "br") && (at(i) == '"' || at(i) == '#');
                if raw {
                    let mut hashes = 0;
                    while at(i) == '#' {
                        hashes += 1;
                        i += 1;
                    }
                    let (begin, first_line) = (i + 1, line);
                    i += 1;
                    let closes = |i: usize| at(i) == '"' && (1..=hashes).all(|k| at(i + k) == '#');
                    while i < c.len() && !closes(i) {
                        line += usize::from(c[i] == '\n');
                        i += 1;
                    }
                    out.push((first_line, c[begin..i.min(c.len())].iter().collect()));
                    i += 1 + hashes;
                } else if word == "b" && at(i) == '"' {
                    i = plain(i, &mut line, &mut out);
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The flags `--name` named in `s`: two dashes, not following a word
/// character or a dash, then a lowercase letter.
fn flags(s: &str) -> Vec<String> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    for i in 0..c.len().saturating_sub(2) {
        let before = if i == 0 { ' ' } else { c[i - 1] };
        if c[i] == '-'
            && c[i + 1] == '-'
            && c[i + 2].is_ascii_lowercase()
            && !(before.is_alphanumeric() || before == '-' || before == '_')
        {
            let name: String = c[i..]
                .iter()
                .take_while(|ch| ch.is_ascii_alphanumeric() || **ch == '-')
                .collect();
            out.push(name);
        }
    }
    out
}

/// Command lines of other programs that the library prints (how to
/// convert a model it cannot read): their flags are theirs, not ours.
const OTHER_PROGRAMS: &[&str] = &["python -m tf2onnx.convert "];

/// `literal` with every other program's command line cut out (from the
/// program to the end of its line).
fn without_other_programs(literal: &str) -> String {
    let mut out = String::new();
    for line in literal.split_inclusive('\n') {
        match OTHER_PROGRAMS.iter().filter_map(|p| line.find(p)).min() {
            Some(at) => out.push_str(&line[..at]),
            None => out.push_str(line),
        }
    }
    out
}

#[test]
fn other_programs_flags_are_theirs_and_only_on_their_line() {
    let text = "python -m tf2onnx.convert --keras m.h5 --output m.onnx\nthen --resume";
    assert_eq!(flags(&without_other_programs(text)), ["--resume"]);
    assert_eq!(flags(&without_other_programs("say --out")), ["--out"]);
}

#[test]
fn no_library_string_names_a_command_line_flag() {
    let src = root().join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    all.sort();
    let mut found = Vec::new();
    for path in all {
        let rel = path.strip_prefix(&src).unwrap();
        if rel == Path::new("main.rs") || rel == Path::new("cli.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, literal) in string_literals(&text) {
            for flag in flags(&without_other_programs(&literal)) {
                found.push(format!("src/{}:{line}: {flag}", rel.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "library strings name command-line flags (give the error a \
         `Remedy` or an `Opt` and word it in src/cli.rs):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_literal_reader_skips_comments_chars_and_lifetimes() {
    let text = "fn f<'a>(x: &'a str) -> char {\n\
                // \"--in-a-comment\"\n\
                /* \"--in /* nested */ block\" */\n\
                let q = '\"'; let e = '\\''; let u = '\\u{2264}';\n\
                let s = \"say --resume\";\n\
                let r = r#\"a \"--raw\" b\"#;\n\
                let b = b\"--byte\";\n\
                let m = \"multi\n--line\";\n\
                let ok = \"x--y a-- -- ---\";\n\
                'x'\n}\n";
    let literals = string_literals(text);
    let got: Vec<(usize, Vec<String>)> =
        literals.iter().map(|(line, s)| (*line, flags(s))).collect();
    assert_eq!(
        got,
        [
            (5, vec!["--resume".to_string()]),
            (6, vec!["--raw".to_string()]),
            (7, vec!["--byte".to_string()]),
            (8, vec!["--line".to_string()]),
            (10, vec![]),
        ]
    );
}
