//! One plan entry (a TOML table) read key by key with typed accessors whose
//! errors name the plan file, the entry and the key; `finish` refuses keys
//! nobody read. Used by the attack section of a plan.

use toml::{Table, Value};

use crate::error::{Error, Result};

pub(crate) struct Entry<'a> {
    pub(crate) origin: &'a str,
    pub(crate) label: String,
    pub(crate) table: Table,
    /// Every key the parser asked for: the keys this kind accepts, so an
    /// unknown one can be matched to its nearest.
    asked: Vec<String>,
}

/// `"; did you mean `x`?"` when one of `known` is within a typo of `word`
/// (edit distance at most 1, or a third of the word's length).
pub(crate) fn did_you_mean(word: &str, known: &[&str]) -> String {
    let limit = (word.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map_or(String::new(), |(_, k)| format!("; did you mean `{k}`?"))
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

impl<'a> Entry<'a> {
    pub(crate) fn new(origin: &'a str, label: String, table: Table) -> Self {
        Entry {
            origin,
            label,
            table,
            asked: Vec::new(),
        }
    }

    /// The keys a parser asked for so far.
    pub(crate) fn asked(&self) -> Vec<&str> {
        self.asked.iter().map(String::as_str).collect()
    }

    pub(crate) fn err(&self, key: &str, message: impl std::fmt::Display) -> Error {
        Error::Plan {
            origin: self.origin.to_string(),
            message: format!("{}: `{key}` {message}", self.label),
        }
    }

    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        if !self.asked.iter().any(|k| k == key) {
            self.asked.push(key.to_string());
        }
        self.table.remove(key)
    }

    pub(crate) fn float(&mut self, key: &str) -> Result<Option<f64>> {
        let v = match self.take(key) {
            None => return Ok(None),
            Some(Value::Float(f)) => f,
            Some(Value::Integer(i)) => i as f64,
            Some(other) => {
                return Err(self.err(key, format!("must be a number, found {}", other.type_str())))
            }
        };
        if !v.is_finite() {
            return Err(self.err(key, format!("must be finite, found {v}")));
        }
        Ok(Some(v))
    }

    pub(crate) fn nonneg_float(&mut self, key: &str) -> Result<Option<f64>> {
        let v = self.float(key)?;
        if let Some(f) = v.filter(|f| *f < 0.0) {
            return Err(self.err(key, format!("must be ≥ 0, found {f}")));
        }
        Ok(v)
    }

    pub(crate) fn positive_int(&mut self, key: &str) -> Result<Option<usize>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(i)) if i >= 1 => Ok(Some(i as usize)),
            Some(Value::Integer(i)) => Err(self.err(key, format!("must be at least 1, found {i}"))),
            Some(other) => Err(self.err(
                key,
                format!("must be an integer, found {}", other.type_str()),
            )),
        }
    }

    pub(crate) fn boolean(&mut self, key: &str) -> Result<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(b)),
            Some(other) => Err(self.err(
                key,
                format!("must be true or false, found {}", other.type_str()),
            )),
        }
    }

    pub(crate) fn string(&mut self, key: &str) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => {
                Err(self.err(key, format!("must be a string, found {}", other.type_str())))
            }
        }
    }

    pub(crate) fn finish(self) -> Result<()> {
        if let Some(key) = self.table.keys().next() {
            let hint = did_you_mean(key, &self.asked());
            return Err(self.err(key, format!("is not a known key for this kind{hint}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_the_nearest_known_word() {
        assert_eq!(edit_distance("stpes", "steps"), 1);
        assert_eq!(edit_distance("", "eps"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            did_you_mean("stpes", &["eps", "steps", "restarts"]),
            "; did you mean `steps`?"
        );
        assert_eq!(
            did_you_mean("stepsize", &["step_size", "steps"]),
            "; did you mean `step_size`?"
        );
        assert_eq!(
            did_you_mean("pgdd", &["fgsm", "pgd", "apgd"]),
            "; did you mean `pgd`?"
        );
        assert_eq!(did_you_mean("colour", &["eps", "steps"]), "");
    }
}
