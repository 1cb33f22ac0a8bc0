//! The one reader of plan entries: a TOML table read key by key with typed
//! accessors, each method's config parsing itself from it.
//!
//! Errors are collected, not returned: an accessor that finds a bad value
//! records a message naming the entry and the key and returns `None`, so one
//! pass over a plan reports every mistake at once (a typo in one entry is not
//! hidden behind an error in another). [`Entry::finish`] adds the keys nobody
//! read, each with the nearest known key ("`stpes`: did you mean `steps`?"),
//! and hands the messages to the plan's [`Errors`].
//!
//! Why not serde: `deny_unknown_fields` does not combine with `flatten`, and
//! internally tagged enums lose toml's spans, so serde's messages would name
//! neither the entry nor the nearest key, nor check ranges. The config types
//! still derive `Serialize`/`Deserialize` for the report and `JsonSchema` for
//! `xai-audit schema --plan`.

use toml::{Table, Value};

use crate::error::Error;

/// Every error found in one plan, in the order found.
#[derive(Debug, Default)]
pub struct Errors {
    origin: String,
    messages: Vec<String>,
}

impl Errors {
    /// No errors yet, for the plan named `origin`.
    pub fn new(origin: &str) -> Self {
        Errors {
            origin: origin.to_string(),
            messages: Vec::new(),
        }
    }

    /// The plan's name in messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Records a plan-level message (it names its own entry and key).
    pub fn push(&mut self, message: impl Into<String>) {
        self.messages.push(message.into());
    }

    /// Records what an entry found wrong with itself.
    pub fn extend(&mut self, messages: Vec<String>) {
        self.messages.extend(messages);
    }

    /// Whether nothing was found wrong.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// `Ok(value)` when nothing was found wrong, else one [`Error::Plan`]
    /// listing every message.
    pub fn into_result<T>(self, value: T) -> crate::Result<T> {
        match self.messages.len() {
            0 => Ok(value),
            1 => Err(Error::Plan {
                origin: self.origin,
                message: self.messages.into_iter().next().unwrap_or_default(),
            }),
            n => Err(Error::Plan {
                origin: self.origin,
                message: format!("{n} errors:\n  {}", self.messages.join("\n  ")),
            }),
        }
    }
}

/// `"; did you mean `x`?"` when one of `known` is within a typo of `word`
/// (edit distance at most 1, or a third of the word's length), else `""`.
pub fn did_you_mean(word: &str, known: &[&str]) -> String {
    let limit = (word.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map_or(String::new(), |(_, k)| format!("; did you mean `{k}`?"))
}

/// The positions in `known` of its `limit` entries nearest to `word`
/// (fewest edits first, ties in their order), for lists too long to print
/// whole (a model's layers).
pub fn nearest(word: &str, known: &[&str], limit: usize) -> Vec<usize> {
    let mut order: Vec<(usize, usize)> = known
        .iter()
        .enumerate()
        .map(|(i, k)| (edit_distance(word, k), i))
        .collect();
    order.sort();
    order.into_iter().take(limit).map(|(_, i)| i).collect()
}

/// `"x" is not a known <what> (known: a, b); did you mean `a`?`
pub fn unknown(word: &str, what: &str, known: &[&str]) -> String {
    format!(
        "\"{word}\" is not a known {what} (known: {}){}",
        known.join(", "),
        did_you_mean(word, known)
    )
}

/// Edits from `a` to `b`: insertions, deletions, substitutions and swaps of
/// two neighbours (the optimal-string-alignment distance: `stpes` is one edit
/// from `steps`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, v) in d[0].iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The entries of an array of tables such as `[[stress]]`, removed from the
/// plan's top-level table, each labelled `stress[i] "name"` for messages.
/// A value that is not an array of tables is recorded in `errors`.
pub fn entries(top: &mut Table, key: &str, errors: &mut Errors) -> Vec<Entry> {
    let items = match top.remove(key) {
        None => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(format!("`{key}` must be an array of tables ([[{key}]])"));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Table(table) = item else {
            errors.push(format!("{key}[{i}] must be a table"));
            continue;
        };
        let label = match table.get("name").and_then(|v| v.as_str()) {
            Some(n) => format!("{key}[{i}] \"{n}\""),
            None => format!("{key}[{i}]"),
        };
        out.push(Entry::new(label, table));
    }
    out
}

/// One entry being read: its remaining keys, the keys asked for (the keys
/// its kind accepts), and the messages found so far.
#[derive(Debug)]
pub struct Entry {
    label: String,
    table: Table,
    asked: Vec<String>,
    errors: Vec<String>,
    /// The kind is missing or unknown: the keys it would accept are too, so
    /// the rest are not reported as unknown.
    kind_unknown: bool,
}

impl Entry {
    /// An entry labelled `label` (e.g. `attack[0] "pgd"`) in messages.
    pub fn new(label: String, table: Table) -> Self {
        Entry {
            label,
            table,
            asked: Vec::new(),
            errors: Vec::new(),
            kind_unknown: false,
        }
    }

    /// How messages name the entry.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Records `label: `key` message`.
    pub fn fail(&mut self, key: &str, message: impl std::fmt::Display) {
        self.errors
            .push(format!("{}: `{key}` {message}", self.label));
    }

    /// Whether a message was recorded.
    pub fn failed(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Whether the entry sets `key` (not yet read).
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// The raw value of `key`, marking it read and known.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        if !self.asked.iter().any(|k| k == key) {
            self.asked.push(key.to_string());
        }
        self.table.remove(key)
    }

    /// Marks `key` as one this kind accepts without reading it (so a typo
    /// of it gets a suggestion).
    pub fn knows(&mut self, key: &str) {
        if !self.asked.iter().any(|k| k == key) {
            self.asked.push(key.to_string());
        }
    }

    fn number(v: &Value) -> Option<f64> {
        match v {
            Value::Float(f) => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// A finite number.
    pub fn float(&mut self, key: &str) -> Option<f64> {
        let v = self.take(key)?;
        match Self::number(&v) {
            Some(f) if f.is_finite() => Some(f),
            Some(f) => {
                self.fail(key, format!("must be finite, found {f}"));
                None
            }
            None => {
                self.fail(key, format!("must be a number, found {}", v.type_str()));
                None
            }
        }
    }

    /// A finite number `≥ 0`.
    pub fn nonneg_float(&mut self, key: &str) -> Option<f64> {
        let f = self.float(key)?;
        if f < 0.0 {
            self.fail(key, format!("must be ≥ 0, found {f}"));
            return None;
        }
        Some(f)
    }

    /// A finite number `> 0`.
    pub fn positive_float(&mut self, key: &str) -> Option<f64> {
        let f = self.float(key)?;
        if f <= 0.0 {
            self.fail(key, format!("must be > 0, found {f}"));
            return None;
        }
        Some(f)
    }

    /// A finite number in `[min, max]`.
    pub fn float_in(&mut self, key: &str, min: f64, max: f64) -> Option<f64> {
        let f = self.float(key)?;
        if f < min || f > max {
            self.fail(key, format!("must be in [{min}, {max}], found {f}"));
            return None;
        }
        Some(f)
    }

    /// An integer in `min..=max`.
    pub fn int_in(&mut self, key: &str, min: i64, max: i64) -> Option<usize> {
        match self.take(key)? {
            Value::Integer(i) if (min..=max).contains(&i) => Some(i as usize),
            Value::Integer(i) => {
                self.fail(key, format!("must be in {min}..={max}, found {i}"));
                None
            }
            other => {
                self.fail(
                    key,
                    format!("must be an integer, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// An integer `≥ 1`.
    pub fn positive_int(&mut self, key: &str) -> Option<usize> {
        match self.take(key)? {
            Value::Integer(i) if i >= 1 => Some(i as usize),
            Value::Integer(i) => {
                self.fail(key, format!("must be at least 1, found {i}"));
                None
            }
            other => {
                self.fail(
                    key,
                    format!("must be an integer, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// An integer `≥ 0`.
    pub fn nonneg_int(&mut self, key: &str) -> Option<usize> {
        self.int_in(key, 0, i64::MAX)
    }

    /// `true` or `false`.
    pub fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.take(key)? {
            Value::Boolean(b) => Some(b),
            other => {
                self.fail(
                    key,
                    format!("must be true or false, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// A string.
    pub fn string(&mut self, key: &str) -> Option<String> {
        match self.take(key)? {
            Value::String(s) => Some(s),
            other => {
                self.fail(key, format!("must be a string, found {}", other.type_str()));
                None
            }
        }
    }

    /// One of `known`, by name.
    pub fn choice<T: Copy>(&mut self, key: &str, known: &[(&str, T)]) -> Option<T> {
        let s = self.string(key)?;
        match known.iter().find(|(n, _)| *n == s) {
            Some(&(_, t)) => Some(t),
            None => {
                let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
                self.fail(key, unknown(&s, "value", &names));
                None
            }
        }
    }

    /// A non-empty array.
    fn array(&mut self, key: &str) -> Option<Vec<Value>> {
        match self.take(key)? {
            Value::Array(items) if items.is_empty() => {
                self.fail(key, "must not be empty");
                None
            }
            Value::Array(items) => Some(items),
            other => {
                self.fail(key, format!("must be an array, found {}", other.type_str()));
                None
            }
        }
    }

    /// A non-empty list of names, each one of `known`, none twice.
    pub fn names<T: Copy + PartialEq>(&mut self, key: &str, known: &[(&str, T)]) -> Option<Vec<T>> {
        let items = self.array(key)?;
        let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
        let mut out = Vec::with_capacity(items.len());
        for v in &items {
            let Value::String(s) = v else {
                self.fail(
                    key,
                    format!("values must be strings, found {}", v.type_str()),
                );
                return None;
            };
            let Some(&(_, t)) = known.iter().find(|(n, _)| n == s) else {
                self.fail(key, unknown(s, "value", &names));
                return None;
            };
            if out.contains(&t) {
                self.fail(key, format!("lists \"{s}\" twice"));
                return None;
            }
            out.push(t);
        }
        Some(out)
    }

    /// A non-empty list of finite numbers in `[min, max]`, none twice.
    pub fn floats_in(&mut self, key: &str, min: f64, max: f64) -> Option<Vec<f64>> {
        self.distinct(key, |v| match Self::number(v) {
            Some(f) if f.is_finite() && f >= min && f <= max => Ok(f),
            Some(f) => Err(format!("values must be in [{min}, {max}], found {f}")),
            None => Err(format!("values must be numbers, found {}", v.type_str())),
        })
    }

    /// A non-empty list of integers in `min..=max`, none twice.
    pub fn ints_in(&mut self, key: &str, min: i64, max: i64) -> Option<Vec<usize>> {
        self.distinct(key, |v| match v {
            Value::Integer(i) if (min..=max).contains(i) => Ok(*i as usize),
            Value::Integer(i) => Err(format!("values must be in {min}..={max}, found {i}")),
            other => Err(format!(
                "values must be integers, found {}",
                other.type_str()
            )),
        })
    }

    /// A non-empty list whose items `item` reads (or says what is wrong
    /// with), none twice; the first mistake is recorded.
    fn distinct<T: PartialEq + std::fmt::Display>(
        &mut self,
        key: &str,
        item: impl Fn(&Value) -> std::result::Result<T, String>,
    ) -> Option<Vec<T>> {
        let items = self.array(key)?;
        let mut out: Vec<T> = Vec::with_capacity(items.len());
        for v in &items {
            match item(v) {
                Ok(x) if out.contains(&x) => {
                    self.fail(key, format!("lists {x} twice"));
                    return None;
                }
                Ok(x) => out.push(x),
                Err(message) => {
                    self.fail(key, message);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// A list of strings (possibly empty).
    pub fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        match self.take(key)? {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => out.push(s),
                        other => {
                            self.fail(
                                key,
                                format!("must list strings, found {}", other.type_str()),
                            );
                            return None;
                        }
                    }
                }
                Some(out)
            }
            other => {
                self.fail(
                    key,
                    format!("must be a list of strings, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// An integer `≥ 1`, or `[height, width]` of them.
    pub fn size2(&mut self, key: &str) -> Option<[usize; 2]> {
        let v = self.take(key)?;
        match &v {
            Value::Integer(i) if *i >= 1 => return Some([*i as usize; 2]),
            Value::Array(items) if items.len() == 2 => {
                if let [Value::Integer(h), Value::Integer(w)] = items.as_slice() {
                    if *h >= 1 && *w >= 1 {
                        return Some([*h as usize, *w as usize]);
                    }
                }
            }
            _ => {}
        }
        self.fail(
            key,
            format!("must be a positive integer or [height, width], found {v}"),
        );
        None
    }

    /// The entry's `name`: required, non-empty, without slashes, control
    /// characters or any of `also_forbidden`.
    pub fn name(&mut self, also_forbidden: &[char]) -> Option<String> {
        let Some(name) = self.string("name") else {
            if !self.errors.iter().any(|m| m.contains("`name`")) {
                self.fail("name", "is missing");
            }
            return None;
        };
        if name.is_empty()
            || name.contains(['/', '\\'])
            || name.contains(also_forbidden)
            || name.chars().any(char::is_control)
        {
            let extra: String = also_forbidden.iter().map(|c| format!(", '{c}'")).collect();
            self.fail(
                "name",
                format!("must be non-empty, without slashes{extra} or control characters"),
            );
            return None;
        }
        Some(name)
    }

    /// The kind (`key` is `kind` or `method`): required, one of `known`.
    pub fn kind(&mut self, key: &str, known: &[&str]) -> Option<String> {
        let Some(kind) = self.string(key) else {
            if !self.errors.iter().any(|m| m.contains(&format!("`{key}`"))) {
                self.fail(key, format!("is missing (one of {})", known.join(", ")));
            }
            self.kind_unknown = true;
            return None;
        };
        if !known.contains(&kind.as_str()) {
            self.fail(key, unknown(&kind, key, known));
            self.kind_unknown = true;
            return None;
        }
        Some(kind)
    }

    /// Ends the entry: every key nobody read is an error (with the nearest
    /// known key), and every message goes to `errors`. Returns whether the
    /// entry was free of errors.
    pub fn finish(mut self, errors: &mut Errors) -> bool {
        let left: Vec<String> = if self.kind_unknown {
            Vec::new()
        } else {
            self.table.keys().cloned().collect()
        };
        for key in left {
            let asked: Vec<&str> = self.asked.iter().map(String::as_str).collect();
            let hint = did_you_mean(&key, &asked);
            self.errors.push(format!(
                "{}: `{key}` is not a known key for this kind (known: {}){hint}",
                self.label,
                asked.join(", ")
            ));
        }
        let ok = self.errors.is_empty();
        errors.extend(self.errors);
        ok
    }
}

#[cfg(test)]
mod tests;
