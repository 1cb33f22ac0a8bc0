//! The names of the tensors in a report's sidecar file
//! (`<report>.safetensors`), one function per kind. Every writer (the report
//! builder, the stress and attribution sections) and every reader (the TUI
//! and its PNG export) builds the names here, so they cannot drift apart.
//! The names are part of the report format: changing one bumps
//! [`crate::report::SCHEMA_VERSION`].

/// The audited inputs, `[N, C, H, W]` in the model's range.
pub const CLEAN_INPUTS: &str = "x/clean";

/// The best adversarial input per data input of `attack`, `[N, C, H, W]`.
pub fn adversarial_inputs(attack: &str) -> String {
    format!("x/adv/{attack}")
}

/// The maps of attribution entry `entry` on `variant` (`clean` or an
/// attack's name), `[N, C, H, W]`.
pub fn attribution_maps(entry: &str, variant: &str) -> String {
    format!("attr/{entry}/{variant}")
}

/// A deletion or insertion curve (`kind`) of attribution entry `entry` on
/// `variant`, `[N, steps + 1]`.
pub fn attribution_curves(entry: &str, variant: &str, kind: &str) -> String {
    format!("attr_curve/{entry}/{variant}/{kind}")
}

/// SmoothGrad's noise of attribution entry `entry` (with `keep_noise`),
/// `[N, samples, C, H, W]`.
pub fn smoothgrad_noise(entry: &str) -> String {
    format!("noise/{entry}")
}

/// Part `part` of stress entry `entry`: a noise family's examples
/// (`uniform`), its inputs and confidences (`uniform/inputs`,
/// `uniform/confidence`), α-scaling's inputs and confidences
/// (`uniform/inputs`, `data/confidence_scaled`), a corruption's examples.
pub fn stress(entry: &str, part: &str) -> String {
    format!("stress/{entry}/{part}")
}

/// The inputs whose outcome goes against the expectation of equivariance
/// entry `entry`, transformed.
pub fn equivariance(entry: &str) -> String {
    format!("equivariance/{entry}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_the_format_reports_were_written_with() {
        assert_eq!(CLEAN_INPUTS, "x/clean");
        assert_eq!(adversarial_inputs("pgd"), "x/adv/pgd");
        assert_eq!(attribution_maps("ig", "clean"), "attr/ig/clean");
        assert_eq!(
            attribution_curves("ig", "pgd", "deletion"),
            "attr_curve/ig/pgd/deletion"
        );
        assert_eq!(smoothgrad_noise("sg"), "noise/sg");
        assert_eq!(
            stress("noise", "uniform/inputs"),
            "stress/noise/uniform/inputs"
        );
        assert_eq!(equivariance("flip"), "equivariance/flip");
    }
}
