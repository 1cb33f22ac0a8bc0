//! Built-in plans by input domain: `mnist`, `cifar` and `imagenet` (the
//! files `attacks/<name>.toml`, compiled in), and the `auto` choice among
//! them from the model's input shape. Each preset is written for inputs in
//! `[0, 1]`; [`Preset::plan_for`] scales its absolute budgets (ε, step sizes,
//! SmoothGrad's stdev, the sensitivity radius) by the width of the model's
//! declared range, so a model saved for `[0, 255]` or `[-1, 1]` gets the same
//! share of its range (every fill value in the presets is named, `black`,
//! and follows the range by itself).

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use super::Plan;
use crate::error::{Error, Result};
use crate::model::ArchSpec;

/// A built-in plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Grayscale digits and the like: L∞ 0.1/0.3 (AutoAttack's MNIST 0.3),
    /// L2 1.5; mirrored inputs are not expected to keep their class.
    Mnist,
    /// Small RGB photographs: RobustBench's CIFAR L∞ 8/255 and L2 0.5;
    /// left-right mirrors, small shifts and rotations keep the class.
    Cifar,
    /// ImageNet-sized RGB photographs: RobustBench's ImageNet L∞ 4/255 and
    /// L2 3.0; short attacks, small batches.
    Imagenet,
}

/// Every preset, in the order `auto` considers them.
pub const PRESETS: [Preset; 3] = [Preset::Mnist, Preset::Cifar, Preset::Imagenet];

/// Inputs up to this many pixels on their shorter side are MNIST- or
/// CIFAR-sized; larger ones ImageNet-sized.
pub const SMALL_INPUT_PX: usize = 64;

/// A preset and why it was chosen, for the report and the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetChoice {
    /// The preset.
    pub preset: Preset,
    /// One sentence: asked for by name, or what `auto` saw in the input.
    pub reason: String,
}

impl Preset {
    /// Its name: `mnist`, `cifar` or `imagenet`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Mnist => "mnist",
            Preset::Cifar => "cifar",
            Preset::Imagenet => "imagenet",
        }
    }

    /// The plan file it is compiled from, relative to the repository.
    pub fn file(self) -> &'static str {
        match self {
            Preset::Mnist => "attacks/mnist.toml",
            Preset::Cifar => "attacks/cifar.toml",
            Preset::Imagenet => "attacks/imagenet.toml",
        }
    }

    /// The plan text, written for inputs in `[0, 1]`.
    pub fn text(self) -> &'static str {
        match self {
            Preset::Mnist => include_str!("../../attacks/mnist.toml"),
            Preset::Cifar => include_str!("../../attacks/cifar.toml"),
            Preset::Imagenet => include_str!("../../attacks/imagenet.toml"),
        }
    }

    /// The preset called `name`.
    pub fn from_name(name: &str) -> Option<Preset> {
        PRESETS.into_iter().find(|p| p.name() == name)
    }

    /// The preset for a model's input: ImageNet-sized when the shorter side
    /// exceeds [`SMALL_INPUT_PX`], else MNIST for one channel and CIFAR for
    /// more.
    pub fn auto(spec: &ArchSpec) -> PresetChoice {
        let [c, h, w] = spec.input.shape;
        let [lo, hi] = spec.input.range;
        let colour = if c == 1 { "grayscale" } else { "colour" };
        let (preset, why) = if h.min(w) > SMALL_INPUT_PX {
            (Preset::Imagenet, format!("larger than {SMALL_INPUT_PX} px"))
        } else if c == 1 {
            (
                Preset::Mnist,
                format!("{colour}, at most {SMALL_INPUT_PX} px"),
            )
        } else {
            (
                Preset::Cifar,
                format!("{colour}, at most {SMALL_INPUT_PX} px"),
            )
        };
        PresetChoice {
            preset,
            reason: format!(
                "chosen automatically: the input is {c}×{h}×{w} ({why}) in [{lo}, {hi}]"
            ),
        }
    }

    /// The inputs the preset is written for, in a few words.
    fn written_for(self) -> &'static str {
        match self {
            Preset::Mnist => "grayscale inputs of at most 64 px such as digits (L∞ ε up to 0.3, mirrors expected to change the class)",
            Preset::Cifar => "colour inputs of at most 64 px (shifts of a few pixels, ε 8/255)",
            Preset::Imagenet => "inputs larger than 64 px (shifts of up to 16 px, a spatial attack up to 24 px, ε 4/255)",
        }
    }

    /// A warning when this preset, asked for by name, is not the one
    /// [`Preset::auto`] picks for the model's input (ImageNet's 16-pixel
    /// shifts on a 32×32 input, MNIST's plan on colour photographs): which
    /// preset `auto` would pick and why. `None` when they agree.
    pub fn fit_warning(self, spec: &ArchSpec) -> Option<String> {
        let auto = Preset::auto(spec);
        if auto.preset == self {
            return None;
        }
        let seen = auto
            .reason
            .strip_prefix("chosen automatically: ")
            .unwrap_or(&auto.reason);
        Some(format!(
            "the preset `{}` is written for {}, not this model's input: `auto` would pick `{}`, since {seen}",
            self.name(),
            self.written_for(),
            auto.preset.name(),
        ))
    }

    /// The preset's plan for a model whose inputs lie in `range`: ε, step
    /// sizes, SmoothGrad's `stdev`, the `sensitivity_radius`, `road_noise`
    /// and `infidelity_stdev` scaled by
    /// `hi − lo`.
    ///
    /// # Errors
    /// Only if the compiled-in plan text were invalid (a test parses each).
    pub fn plan_for(self, range: [f32; 2]) -> Result<Plan> {
        let width = f64::from(range[1] - range[0]);
        let mut table: Table = self
            .text()
            .parse()
            .map_err(|e: toml::de::Error| Error::Plan {
                origin: self.file().to_string(),
                message: format!("not valid TOML: {}", e.message()),
            })?;
        scale_entries(&mut table, "attack", &["eps", "step_size"], width);
        scale_entries(
            &mut table,
            "attribution",
            &[
                "stdev",
                "sensitivity_radius",
                "road_noise",
                "infidelity_stdev",
            ],
            width,
        );
        let text = toml::to_string(&table).map_err(|e| Error::Plan {
            origin: self.file().to_string(),
            message: e.to_string(),
        })?;
        Plan::from_toml(&text, &format!("preset {} ({})", self.name(), self.file()))
    }
}

/// Multiplies `keys` of every `[[section]]` entry by `factor` (numbers and
/// arrays of numbers, as ε lists are).
fn scale_entries(table: &mut Table, section: &str, keys: &[&str], factor: f64) {
    let Some(Value::Array(entries)) = table.get_mut(section) else {
        return;
    };
    for entry in entries.iter_mut().filter_map(Value::as_table_mut) {
        for key in keys {
            if let Some(v) = entry.get_mut(*key) {
                scale(v, factor);
            }
        }
    }
}

fn scale(v: &mut Value, factor: f64) {
    match v {
        Value::Float(f) => *f *= factor,
        Value::Integer(i) => *v = Value::Float(*i as f64 * factor),
        Value::Array(items) => items.iter_mut().for_each(|x| scale(x, factor)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(shape: [usize; 3], range: [f32; 2]) -> ArchSpec {
        let json = format!(
            r#"{{"version": 2, "input": {{"shape": {shape:?}, "range": {range:?}}},
               "nodes": [{{"name": "f", "op": "flatten"}},
                         {{"name": "fc", "op": "linear", "param": "fc", "in_features": {}, "out_features": 10}}]}}"#,
            shape.iter().product::<usize>()
        );
        ArchSpec::from_json(&json, "test").unwrap()
    }

    #[test]
    fn every_preset_parses_and_names_its_file() {
        for p in PRESETS {
            let plan = p.plan_for([0.0, 1.0]).unwrap();
            assert!(!plan.attacks.is_empty(), "{}", p.name());
            assert_eq!(Preset::from_name(p.name()), Some(p));
            assert!(p.file().ends_with(&format!("{}.toml", p.name())));
        }
        assert_eq!(Preset::from_name("svhn"), None);
    }

    #[test]
    fn auto_follows_the_input_shape() {
        let cases = [
            ([1, 28, 28], Preset::Mnist),
            ([1, 64, 64], Preset::Mnist),
            ([3, 32, 32], Preset::Cifar),
            ([3, 64, 64], Preset::Cifar),
            ([3, 224, 224], Preset::Imagenet),
            ([1, 128, 128], Preset::Imagenet),
            ([3, 65, 300], Preset::Imagenet),
        ];
        for (shape, want) in cases {
            let choice = Preset::auto(&spec(shape, [0.0, 1.0]));
            assert_eq!(choice.preset, want, "{shape:?}");
            let dims = format!("{}×{}×{}", shape[0], shape[1], shape[2]);
            assert!(choice.reason.contains(&dims), "{}", choice.reason);
        }
        let r = Preset::auto(&spec([3, 32, 32], [0.0, 255.0])).reason;
        assert!(r.contains("[0, 255]"), "{r}");
    }

    /// A user ran `imagenet` on a 3×32×32 model (16-pixel shifts) and
    /// `mnist` on an RGB one without a word: a preset that is not `auto`'s
    /// choice says which one `auto` would pick and why.
    #[test]
    fn a_preset_that_does_not_fit_the_input_says_what_auto_would_pick() {
        let cifar_sized = spec([3, 32, 32], [0.0, 1.0]);
        let w = Preset::Imagenet.fit_warning(&cifar_sized).unwrap();
        for needle in [
            "`imagenet`",
            "16 px",
            "3×32×32",
            "`auto` would pick `cifar`",
            "colour",
        ] {
            assert!(w.contains(needle), "{needle}: {w}");
        }
        let w = Preset::Mnist.fit_warning(&cifar_sized).unwrap();
        assert!(w.contains("`auto` would pick `cifar`"), "{w}");
        let w = Preset::Cifar
            .fit_warning(&spec([1, 28, 28], [0.0, 1.0]))
            .unwrap();
        assert!(w.contains("`auto` would pick `mnist`"), "{w}");
        assert_eq!(Preset::Cifar.fit_warning(&cifar_sized), None);
        assert_eq!(
            Preset::Imagenet.fit_warning(&spec([3, 224, 224], [0.0, 1.0])),
            None
        );
    }

    /// The budgets as written (ε of each attack), read straight from the TOML.
    fn written_eps(p: Preset) -> Vec<(String, f64)> {
        let t: Table = p.text().parse().unwrap();
        t["attack"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| {
                let a = a.as_table().unwrap();
                let eps = a.get("eps")?;
                Some((a["name"].as_str().unwrap().to_string(), eps.as_float()?))
            })
            .collect()
    }

    #[test]
    fn budgets_scale_with_the_declared_range() {
        for p in PRESETS {
            let written = written_eps(p);
            assert!(!written.is_empty());
            for (range, width) in [([0.0, 1.0], 1.0), ([-1.0, 1.0], 2.0), ([0.0, 255.0], 255.0)] {
                let plan = p.plan_for(range).unwrap();
                let json = serde_json::to_value(&plan).unwrap();
                for (name, eps) in &written {
                    let entry = json["attacks"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|a| a["name"] == name.as_str())
                        .unwrap();
                    let got = entry["eps"].as_f64().unwrap();
                    assert!(
                        (got - eps * width).abs() <= 1e-9 * width,
                        "{} {name} on {range:?}: {got} vs {}",
                        p.name(),
                        eps * width
                    );
                }
            }
        }
    }

    #[test]
    fn the_standard_budgets_are_the_published_ones() {
        let eps = |p, name: &str| {
            written_eps(p)
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, e)| e)
                .unwrap()
        };
        // RobustBench: CIFAR L∞ 8/255 and L2 0.5, ImageNet L∞ 4/255;
        // AutoAttack's MNIST L∞ 0.3.
        assert!((eps(Preset::Cifar, "pgd-linf-8-255") - 8.0 / 255.0).abs() < 1e-12);
        assert!((eps(Preset::Cifar, "pgd-l2-0.5") - 0.5).abs() < 1e-12);
        assert!((eps(Preset::Imagenet, "pgd-linf-4-255") - 4.0 / 255.0).abs() < 1e-12);
        assert!((eps(Preset::Mnist, "pgd-linf-0.3") - 0.3).abs() < 1e-12);
    }
}
