//! The `[[stress]]` and `[[equivariance]]` sections of a plan: each entry's
//! name and kind, its settings read by the check's own config
//! (`crate::stress::<check>::…Config::from_entry`), and names unique within
//! each section. Every mistake of every entry is reported.

use toml::Table;

use crate::entry::{entries, Entry, Errors};
use crate::stress::spec::{
    EquivarianceSpec, Reader, StressSpec, EQUIVARIANCE_KINDS, EQUIVARIANCE_READERS, STRESS_KINDS,
    STRESS_READERS,
};

/// Reads the `stress` and `equivariance` arrays of the plan's top-level table.
pub(super) fn parse(
    top: &mut Table,
    errors: &mut Errors,
) -> (Vec<StressSpec>, Vec<EquivarianceSpec>) {
    let stress = section(top, "stress", STRESS_KINDS, STRESS_READERS, errors)
        .into_iter()
        .map(|(name, check)| StressSpec { name, check })
        .collect();
    let equivariance = section(
        top,
        "equivariance",
        EQUIVARIANCE_KINDS,
        EQUIVARIANCE_READERS,
        errors,
    )
    .into_iter()
    .map(|(name, check)| EquivarianceSpec { name, check })
    .collect();
    (stress, equivariance)
}

/// The entries of section `key`, each read by its kind's reader: the
/// entries free of errors, as `(name, check)`.
fn section<C>(
    top: &mut Table,
    key: &str,
    kinds: &[&str],
    readers: &[(&str, Reader<C>)],
    errors: &mut Errors,
) -> Vec<(String, C)> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for mut e in entries(top, key, errors) {
        let name = e.name(&[]);
        let check = read_check(&mut e, kinds, readers);
        let label = e.label().to_string();
        let ok = e.finish(errors);
        let Some(name) = name else { continue };
        if seen.contains(&name) {
            errors.push(format!(
                "{label}: `name` is used twice; names must be unique"
            ));
            continue;
        }
        seen.push(name.clone());
        if let (true, Some(check)) = (ok, check) {
            out.push((name, check));
        }
    }
    out
}

/// The entry's check, read by the reader of its kind (`None` when the kind is
/// missing or unknown, recorded in `e`).
fn read_check<C>(e: &mut Entry, kinds: &[&str], readers: &[(&str, Reader<C>)]) -> Option<C> {
    let kind = e.kind("kind", kinds)?;
    let (_, read) = readers.iter().find(|(k, _)| *k == kind)?;
    Some(read(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stress::lie_derivative::LieMethod;
    use crate::stress::{EquivarianceCheck, StressCheck};

    fn parse_text(text: &str) -> Result<(Vec<StressSpec>, Vec<EquivarianceSpec>), String> {
        let mut top: Table = text.parse().unwrap();
        let mut errors = Errors::new("p.toml");
        let parsed = parse(&mut top, &mut errors);
        errors.into_result(parsed).map_err(|e| e.to_string())
    }

    fn err(text: &str) -> String {
        parse_text(text).unwrap_err()
    }

    #[test]
    fn defaults_are_filled_in() {
        let (s, q) = parse_text(
            "[[stress]]\nname = \"a\"\nkind = \"alpha_scaling\"\n\
             [[stress]]\nname = \"n\"\nkind = \"noise\"\n\
             [[equivariance]]\nname = \"f\"\nkind = \"flip\"\n\
             [[equivariance]]\nname = \"l\"\nkind = \"lie_derivative\"\n",
        )
        .unwrap();
        let StressCheck::AlphaScaling(a) = &s[0].check else {
            panic!()
        };
        assert_eq!(
            (a.target_confidence, a.alphas[0], a.count),
            (0.999, 1.0, None)
        );
        let StressCheck::Noise(n) = &s[1].check else {
            panic!()
        };
        assert_eq!(n.families.len(), 5);
        let EquivarianceCheck::Flip(f) = &q[0].check else {
            panic!()
        };
        assert!(!f.expectation.expect_invariant);
        let EquivarianceCheck::LieDerivative(l) = &q[1].check else {
            panic!()
        };
        assert_eq!((l.method, l.transforms.len()), (LieMethod::Exact, 3));
    }

    #[test]
    fn errors_name_file_entry_and_key() {
        let e = err("[[stress]]\nname = \"n\"\nkind = \"noise\"\nfamilies = [\"pink\"]\n");
        assert!(
            e.contains("p.toml")
                && e.contains("stress[0] \"n\"")
                && e.contains("`families`")
                && e.contains("pink"),
            "{e}"
        );
        let e = err("[[stress]]\nname = \"n\"\nkind = \"noise\"\ncuont = 3\n");
        assert!(
            e.contains("`cuont`") && e.contains("not a known key") && e.contains("`count`"),
            "{e}"
        );
        let e = err("[[stress]]\nname = \"n\"\nkind = \"fog\"\n");
        assert!(e.contains("`kind`") && e.contains("\"fog\""), "{e}");
        let e = err("[[stress]]\nname = \"a\"\nkind = \"alpha_scaling\"\nalphas = [2, 3]\n");
        assert!(e.contains("`alphas`") && e.contains("start at 1"), "{e}");
        let e = err("[[stress]]\nname = \"c\"\nkind = \"corruptions\"\nseverities = [0, 1]\n");
        assert!(e.contains("`severities`") && e.contains("1..=5"), "{e}");
        let e = err("[[equivariance]]\nname = \"s\"\nkind = \"shift\"\nmode = \"reflect\"\n");
        assert!(
            e.contains("equivariance[0] \"s\"") && e.contains("`mode`"),
            "{e}"
        );
        let e = err("[[equivariance]]\nname = \"s\"\nkind = \"shift\"\npixels = [1, 1]\n");
        assert!(e.contains("`pixels`") && e.contains("twice"), "{e}");
        let e = err("[[equivariance]]\nname = \"l\"\nkind = \"lie_derivative\"\nstep_px = 0\n");
        assert!(e.contains("`step_px`") && e.contains("positive"), "{e}");
        let e =
            err("[[equivariance]]\nname = \"w\"\nkind = \"worst_case\"\nexpect_invariant = true\n");
        assert!(
            e.contains("`expect_invariant`") && e.contains("not a known key"),
            "{e}"
        );
        let e = err("[[equivariance]]\nname = \"x\"\nkind = \"flip\"\n[[equivariance]]\nname = \"x\"\nkind = \"flip\"\n");
        assert!(
            e.contains("equivariance[1] \"x\": `name`") && e.contains("twice"),
            "{e}"
        );
        let e = err("stress = 3\n");
        assert!(e.contains("[[stress]]"), "{e}");
        let e = err("[[stress]]\nkind = \"noise\"\n");
        assert!(e.contains("`name` is missing"), "{e}");
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let e = err("[[stress]]\nname = \"a\"\nkind = \"alpha_scaling\"\nalphas = [2, 3]\n\
             target_confidence = 1\nbisection_steps = 99\n\
             [[equivariance]]\nname = \"s\"\nkind = \"shfit\"\n\
             [[equivariance]]\nname = \"l\"\nkind = \"lie_derivative\"\nstep_deg = 90\nborder = \"wrap\"\n");
        for want in [
            "6 errors",
            "stress[0] \"a\": `alphas` must start at 1 and increase",
            "stress[0] \"a\": `target_confidence` must be strictly between 0 and 1, found 1",
            "stress[0] \"a\": `bisection_steps` must be in 0..=60, found 99",
            "equivariance[0] \"s\": `kind` \"shfit\" is not a known kind",
            "did you mean `shift`?",
            "equivariance[1] \"l\": `step_deg` must be in [0, 45], found 90",
            "equivariance[1] \"l\": `border` \"wrap\" is not a known value",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
    }

    #[test]
    fn shipped_plans_hold_stress_and_equivariance_entries() {
        let plan = crate::plan::Plan::default_plan();
        assert_eq!((plan.stress.len(), plan.equivariance.len()), (4, 6));
        for file in ["quick.toml", "stress-parity.toml"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("attacks")
                .join(file);
            let plan = crate::plan::Plan::from_file(&path).unwrap();
            assert!(
                !plan.stress.is_empty() && !plan.equivariance.is_empty(),
                "{file}"
            );
        }
    }

    #[test]
    fn specs_round_trip_through_json() {
        let (s, q) = parse_text(
            "[[stress]]\nname = \"c\"\nkind = \"corruptions\"\ncorruptions = [\"fog\", \"jpeg\"]\n\
             [[equivariance]]\nname = \"s\"\nkind = \"shift\"\nmode = \"zero\"\n",
        )
        .unwrap();
        let json = serde_json::to_value(&s[0]).unwrap();
        assert_eq!(json["kind"], "corruptions");
        assert_eq!(json["corruptions"], serde_json::json!(["fog", "jpeg"]));
        let back: StressSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, s[0]);
        let json = serde_json::to_value(&q[0]).unwrap();
        assert_eq!(
            (json["kind"].as_str(), json["mode"].as_str()),
            (Some("shift"), Some("zero"))
        );
        assert_eq!(json["expect_invariant"], true);
        let back: EquivarianceSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, q[0]);
    }
}
