//! The module layering that `src/lib.rs` states, enforced: every `crate::`
//! path in a library file (outside its `#[cfg(test)]` tail) must point to a
//! lower layer, or to a module every layer may use. The layers are read from
//! lib.rs's own doc, so the doc and the check cannot drift apart.
//!
//! Imports that still go against the order are listed in [`KNOWN`] with the
//! reason they remain (issue 14 removes them). The list is a ratchet: a new
//! upward or sideways import fails, and so does a listed one that is gone,
//! so the list only shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::root;

/// Upward or sideways imports that remain, as `(from, to)`.
const KNOWN: &[(&str, &str)] = &[];

/// `name → layer` from lib.rs's doc lines `//! N. `a`, `b`` (bottom is 1),
/// and the modules any layer may use (`//! Anywhere: `a`, `b``).
fn layers() -> (BTreeMap<String, usize>, BTreeSet<String>) {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let names = |line: &str| -> Vec<String> {
        line.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut rank = BTreeMap::new();
    let mut anywhere = BTreeSet::new();
    for line in lib.lines() {
        let Some(rest) = line.strip_prefix("//! ") else {
            continue;
        };
        if let Some(list) = rest.strip_prefix("Anywhere: ") {
            anywhere.extend(names(list));
        } else if let Some((n, list)) = rest.split_once(". ") {
            if let Ok(n) = n.parse::<usize>() {
                for name in names(list) {
                    rank.insert(name, n);
                }
            }
        }
    }
    (rank, anywhere)
}

/// The top-level modules a file's code names through `crate::`, before its
/// `#[cfg(test)]` tail.
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::x, b}`: the first segment of each item at depth 0.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.insert(first_segment(&item));
        } else {
            out.insert(first_segment(rest));
        }
    }
    out.remove("");
    // `crate::Error` and `crate::Result`: lib.rs's re-exports of `error`.
    out.retain(|m| !m.starts_with(char::is_uppercase));
    out
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(from, to)` for every import between two top-level modules.
fn edges() -> BTreeSet<(String, String)> {
    let src = root().join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut out = BTreeSet::new();
    for path in all {
        let rel = path.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        // The binary (main.rs, cli.rs) sits above every layer.
        if ["lib", "main", "cli"].contains(&module.as_str()) {
            continue;
        }
        for to in imports(&std::fs::read_to_string(&path).unwrap()) {
            if to != module {
                out.insert((module.clone(), to));
            }
        }
    }
    out
}

#[test]
fn modules_import_only_downward() {
    let (rank, anywhere) = layers();
    assert!(rank.len() >= 10, "lib.rs lists the layers: {rank:?}");
    let mut unknown = BTreeSet::new();
    let mut against = BTreeSet::new();
    for (from, to) in edges() {
        for m in [&from, &to] {
            if !rank.contains_key(m) && !anywhere.contains(m) {
                unknown.insert(m.clone());
            }
        }
        if anywhere.contains(&to) || !rank.contains_key(&from) {
            continue;
        }
        match rank.get(&to) {
            Some(r) if *r < rank[&from] => {}
            Some(_) => {
                against.insert((from, to));
            }
            None => {}
        }
    }
    assert!(
        unknown.is_empty(),
        "modules missing from lib.rs's layers: {unknown:?}"
    );
    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let new: Vec<_> = against.difference(&known).collect();
    let gone: Vec<_> = known.difference(&against).collect();
    assert!(
        new.is_empty(),
        "imports against the layering in lib.rs (from → to): {new:?}"
    );
    assert!(
        gone.is_empty(),
        "these imports no longer go against the layering: remove them from KNOWN: {gone:?}"
    );
}

#[test]
fn the_import_reader_sees_grouped_and_inline_paths() {
    let text = "use crate::{attack::Norm, model::{Classifier, Objective}};\n\
                fn f() { crate::stats::argmax(&[]); }\n\
                // crate::tui is only mentioned\n\
                #[cfg(test)]\nmod tests { use crate::plan::Plan; }\n";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["attack", "model", "stats"]);
}
