//! The entry reader's tests: every mistake reported, with the nearest key.

use super::*;

fn entry(text: &str) -> Entry {
    Entry::new("attack[0] \"a\"".into(), text.parse().unwrap())
}

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

#[test]
fn nearest_orders_by_edits_then_position() {
    let known = ["res1.block.0", "res2.block.4", "res2.block.1", "fc"];
    assert_eq!(nearest("res2.blok.4", &known, 2), vec![1, 2]);
    assert_eq!(nearest("x", &known, 10).len(), 4);
}

#[test]
fn every_mistake_of_an_entry_is_reported() {
    let mut e = entry("steps = 0\nstep_size = \"big\"\nstpes = 3\nok = true\n");
    assert_eq!(e.positive_int("steps"), None);
    assert_eq!(e.float("step_size"), None);
    assert_eq!(e.boolean("ok"), Some(true));
    let mut errors = Errors::new("p.toml");
    assert!(!e.finish(&mut errors));
    let msg = errors.into_result(()).unwrap_err().to_string();
    for want in [
        "p.toml",
        "3 errors",
        "attack[0] \"a\": `steps` must be at least 1, found 0",
        "`step_size` must be a number, found string",
        "`stpes` is not a known key for this kind",
        "did you mean `steps`?",
    ] {
        assert!(msg.contains(want), "{want} not in {msg}");
    }
}

#[test]
fn lists_are_checked_item_by_item() {
    let mut e = entry("a = [1, 2, 2]\nb = [0.5, 7]\nc = [\"xx\", \"yy\"]\nd = []\n");
    assert_eq!(e.ints_in("a", 1, 5), None);
    assert_eq!(e.floats_in("b", 0.0, 1.0), None);
    assert_eq!(e.names("c", &[("xx", 1), ("yyy", 2)]), None);
    assert_eq!(e.floats_in("d", 0.0, 1.0), None);
    let mut errors = Errors::new("p");
    e.finish(&mut errors);
    let msg = errors.into_result(()).unwrap_err().to_string();
    assert!(msg.contains("`a` lists 2 twice"), "{msg}");
    assert!(
        msg.contains("`b` values must be in [0, 1], found 7"),
        "{msg}"
    );
    assert!(
        msg.contains("\"yy\" is not a known value") && msg.contains("did you mean `yyy`"),
        "{msg}"
    );
    assert!(msg.contains("`d` must not be empty"), "{msg}");
}

#[test]
fn names_and_kinds() {
    let mut e = entry("name = \"a/b\"\nkind = \"pgdd\"\n");
    assert_eq!(e.name(&['@']), None);
    assert_eq!(e.kind("kind", &["pgd", "fgsm"]), None);
    let mut errors = Errors::new("p");
    e.finish(&mut errors);
    let msg = errors.into_result(()).unwrap_err().to_string();
    assert!(msg.contains("without slashes, '@'"), "{msg}");
    assert!(
        msg.contains("\"pgdd\" is not a known kind (known: pgd, fgsm); did you mean `pgd`?"),
        "{msg}"
    );
    let mut e = entry("x = 1\nsteps = 3\n");
    assert_eq!(e.kind("method", &["saliency"]), None);
    assert_eq!(e.size2("x"), Some([1, 1]));
    let mut errors = Errors::new("p");
    e.finish(&mut errors);
    assert!(errors
        .into_result(())
        .unwrap_err()
        .to_string()
        .contains("`method` is missing (one of saliency)"));
}
