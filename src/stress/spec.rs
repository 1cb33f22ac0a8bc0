//! The family's two lists: the `[[stress]]` checks and the `[[equivariance]]`
//! checks, one line per check giving its kind (as plans and reports write
//! it), its variant and its config (in the check's own file).
//!
//! Each list writes, through the `family!` macro, the tagged enum (serialized into
//! the report's plan as `{"name": …, "kind": …, <config fields>}`), the list
//! of kinds and each kind's reader of a plan entry, so the three cannot
//! disagree. Adding a check is its file plus one line here (plus its arm in
//! [`run_stress`](super::run_stress), which the compiler asks for).

use serde::{Deserialize, Serialize};

use super::alpha_scaling::AlphaScalingConfig;
use super::calibration::CalibrationConfig;
use super::consistency::{FlipConfig, RotationConfig, ShiftConfig};
use super::corruptions::CorruptionsConfig;
use super::lie_derivative::LieDerivativeConfig;
use super::noise::NoiseConfig;
use super::worst_case::WorstCaseConfig;
use crate::entry::Entry;

/// Reads one kind's settings from a plan entry (errors recorded in it).
pub type Reader<C> = fn(&mut Entry) -> C;

/// Writes a family's enum (tagged by `kind`), its list of kinds and the
/// table of its readers from one line per check.
macro_rules! family {
    (
        $(#[$doc:meta])*
        enum $enum:ident;
        kinds $kinds:ident;
        readers $readers:ident;
        $( $(#[$vdoc:meta])* $kind:literal => $variant:ident($config:ty), )+
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(tag = "kind")]
        pub enum $enum {
            $( $(#[$vdoc])* #[serde(rename = $kind)] $variant($config), )+
        }

        impl $enum {
            /// The kind, as plans and reports write it.
            pub fn kind(&self) -> &'static str {
                match self {
                    $( $enum::$variant(_) => $kind, )+
                }
            }
        }

        #[doc = concat!("The kinds of [`", stringify!($enum), "`], in its order.")]
        pub const $kinds: &[&str] = &[$($kind),+];

        #[doc = concat!("Each kind of [`", stringify!($enum), "`] with the reader of its settings.")]
        pub const $readers: &[(&str, Reader<$enum>)] = &[
            $( ($kind, |e| $enum::$variant(<$config>::from_entry(e))), )+
        ];
    };
}

family! {
    /// A stress check and its settings.
    enum StressCheck;
    kinds STRESS_KINDS;
    readers STRESS_READERS;
    /// Confidence on inputs scaled by α (Hein et al., CVPR 2019).
    "alpha_scaling" => AlphaScaling(AlphaScalingConfig),
    /// Confidence on synthetic noise, and max-softmax as an OOD detector.
    "noise" => Noise(NoiseConfig),
    /// Expected calibration error and reliability table on the data.
    "calibration" => Calibration(CalibrationConfig),
    /// Accuracy under common corruptions at several severities.
    "corruptions" => Corruptions(CorruptionsConfig),
}

family! {
    /// An equivariance check and its settings.
    enum EquivarianceCheck;
    kinds EQUIVARIANCE_KINDS;
    readers EQUIVARIANCE_READERS;
    /// Prediction consistency under integer shifts.
    "shift" => Shift(ShiftConfig),
    /// Prediction consistency under rotations.
    "rotation" => Rotation(RotationConfig),
    /// Prediction consistency under flips.
    "flip" => Flip(FlipConfig),
    /// Lie derivatives of the softmax (Gruver et al., ICLR 2023).
    "lie_derivative" => LieDerivative(LieDerivativeConfig),
    /// Worst case over a grid of rotations and translations, per input.
    "worst_case" => WorstCase(WorstCaseConfig),
}

/// One `[[stress]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StressSpec {
    /// Unique among the stress entries; names report entries and tensors.
    pub name: String,
    /// What to run.
    #[serde(flatten)]
    pub check: StressCheck,
}

/// One `[[equivariance]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EquivarianceSpec {
    /// Unique among the equivariance entries; names report entries and tensors.
    pub name: String,
    /// What to run.
    #[serde(flatten)]
    pub check: EquivarianceCheck,
}

/// The most generated inputs an entry may ask for: large enough for any
/// sensible plan, small enough to catch typos.
pub const MAX_COUNT: i64 = 10_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn read<C>(readers: &[(&str, Reader<C>)], kind: &str) -> C {
        let (_, read) = readers.iter().find(|(k, _)| *k == kind).unwrap();
        let mut e = Entry::new("x".into(), toml::Table::new());
        let check = read(&mut e);
        let mut errors = crate::entry::Errors::new("p");
        assert!(e.finish(&mut errors));
        check
    }

    #[test]
    fn kinds_readers_and_serde_tags_agree() {
        for kind in STRESS_KINDS {
            let check = read(STRESS_READERS, kind);
            assert_eq!(check.kind(), *kind);
            assert_eq!(serde_json::to_value(&check).unwrap()["kind"], *kind);
        }
        for kind in EQUIVARIANCE_KINDS {
            let check = read(EQUIVARIANCE_READERS, kind);
            assert_eq!(check.kind(), *kind);
            assert_eq!(serde_json::to_value(&check).unwrap()["kind"], *kind);
        }
        assert_eq!(
            STRESS_KINDS,
            ["alpha_scaling", "noise", "calibration", "corruptions"]
        );
        assert_eq!(
            EQUIVARIANCE_KINDS,
            ["shift", "rotation", "flip", "lie_derivative", "worst_case"]
        );
    }
}
