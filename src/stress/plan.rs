//! The `[[stress]]` and `[[equivariance]]` entries of an audit plan: their
//! types (serialized into the report's resolved plan, defaults filled in) and
//! their strict parsing — unknown kinds, keys and values are errors naming the
//! file, the entry and the key, before any work starts.

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use super::corruptions::Corruption;
use crate::error::{Error, Result};

/// One `[[stress]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StressSpec {
    /// Unique among the stress entries; names report entries and tensors.
    pub name: String,
    /// What to run.
    #[serde(flatten)]
    pub check: StressCheck,
}

/// A stress check and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StressCheck {
    /// Confidence on inputs scaled by α (Hein et al., CVPR 2019).
    AlphaScaling(AlphaScalingSpec),
    /// Confidence on synthetic noise, and max-softmax as an OOD detector.
    Noise(NoiseSpec),
    /// Expected calibration error and reliability table on the data.
    Calibration(CalibrationSpec),
    /// Accuracy under common corruptions at several severities.
    Corruptions(CorruptionsSpec),
}

/// Where α-scaling takes its inputs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlphaInputs {
    /// Uniform noise in the valid range.
    Uniform,
    /// The audited data.
    Data,
}

/// `kind = "alpha_scaling"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AlphaScalingSpec {
    /// Input sets, each reported separately.
    pub inputs: Vec<AlphaInputs>,
    /// Uniform-noise inputs to draw (absent: as many as data inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Scale factors, starting at 1, increasing; MMC is reported at each and
    /// the search for the smallest α reaching the target walks them.
    pub alphas: Vec<f64>,
    /// The confidence whose smallest α is sought (0.999 in Hein et al.).
    pub target_confidence: f64,
    /// Bisection steps refining α inside the first bracket that reaches it.
    pub bisection_steps: usize,
    /// Keep the uniform-noise inputs in the sidecar (for cross-checks).
    pub save_inputs: bool,
}

/// A family of synthetic out-of-distribution inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoiseFamily {
    /// Every pixel uniform in `[0, 1]`.
    Uniform,
    /// Every pixel normal with the data's pixel mean and standard deviation, clipped.
    Gaussian,
    /// A data input with its pixel positions shuffled.
    Permuted,
    /// Uniform noise blurred (σ uniform in [1, 2.5] px) and stretched to `[0, 1]`.
    Blurred,
    /// One uniform value per channel everywhere.
    Constant,
}

impl NoiseFamily {
    /// The name used in plans and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            NoiseFamily::Uniform => "uniform",
            NoiseFamily::Gaussian => "gaussian",
            NoiseFamily::Permuted => "permuted",
            NoiseFamily::Blurred => "blurred",
            NoiseFamily::Constant => "constant",
        }
    }

    /// Every family.
    pub const ALL: [NoiseFamily; 5] = [
        NoiseFamily::Uniform,
        NoiseFamily::Gaussian,
        NoiseFamily::Permuted,
        NoiseFamily::Blurred,
        NoiseFamily::Constant,
    ];
}

/// `kind = "noise"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NoiseSpec {
    /// The families, each reported separately.
    pub families: Vec<NoiseFamily>,
    /// Inputs per family (absent: as many as data inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// Confidently classified noise inputs to keep in the sidecar, per family.
    pub examples: usize,
    /// Keep every generated input in the sidecar (large; for cross-checks).
    pub save_inputs: bool,
}

/// `kind = "calibration"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CalibrationSpec {
    /// Equal-width confidence bins (15 in Guo et al.).
    pub bins: usize,
}

/// `kind = "corruptions"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CorruptionsSpec {
    /// The corruptions, in report order.
    pub corruptions: Vec<Corruption>,
    /// Severities, each in 1..=5.
    pub severities: Vec<usize>,
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

/// An equivariance check and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EquivarianceCheck {
    /// Prediction consistency under integer shifts.
    Shift(ShiftSpec),
    /// Prediction consistency under rotations.
    Rotation(RotationSpec),
    /// Prediction consistency under flips.
    Flip(FlipSpec),
    /// Lie derivatives of the softmax (Gruver et al., ICLR 2023).
    LieDerivative(LieDerivativeSpec),
    /// Worst case over a grid of rotations and translations, per input.
    WorstCase(WorstCaseSpec),
}

/// What the plan expects of a consistency check, and how many failures to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Expectation {
    /// Whether predictions should stay the same (digits under shifts) or
    /// change (digits under flips).
    pub expect_invariant: bool,
    /// With `expect_invariant`, a transformation whose consistency falls
    /// below this is a warning.
    pub min_consistency: f64,
    /// Changed predictions to keep in the sidecar (the first, in data order).
    pub examples: usize,
}

/// How integer shifts treat the edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShiftMode {
    /// What leaves one edge comes back at the other (`torch.roll`).
    Circular,
    /// What enters is 0.
    Zero,
}

/// `kind = "shift"`: every distance, in ±x and in ±y.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShiftSpec {
    /// Edge handling.
    pub mode: ShiftMode,
    /// Distances in pixels.
    pub pixels: Vec<usize>,
    /// Expectation and examples.
    #[serde(flatten)]
    pub expectation: Expectation,
}

/// `kind = "rotation"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RotationSpec {
    /// Angles in degrees, counter-clockwise positive.
    pub angles_deg: Vec<f64>,
    /// Expectation and examples.
    #[serde(flatten)]
    pub expectation: Expectation,
}

/// A mirror axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlipAxis {
    /// Left–right.
    Horizontal,
    /// Top–bottom.
    Vertical,
}

/// `kind = "flip"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlipSpec {
    /// The flips, each reported separately.
    pub axes: Vec<FlipAxis>,
    /// Expectation and examples.
    #[serde(flatten)]
    pub expectation: Expectation,
}

/// A one-parameter group of transformations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LieTransform {
    /// Horizontal translation, per pixel.
    TranslateX,
    /// Vertical translation, per pixel.
    TranslateY,
    /// Rotation about the centre, per radian.
    Rotate,
}

impl LieTransform {
    /// The name used in plans and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            LieTransform::TranslateX => "translate_x",
            LieTransform::TranslateY => "translate_y",
            LieTransform::Rotate => "rotate",
        }
    }
}

/// How the derivative in `t` is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LieMethod {
    /// Exact Jacobian–vector product (one input gradient per class).
    Exact,
    /// Central finite difference in `t` (two forward passes per transform).
    FiniteDifference,
}

/// `kind = "lie_derivative"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LieDerivativeSpec {
    /// The transformations, each reported separately.
    pub transforms: Vec<LieTransform>,
    /// Exact or finite difference.
    pub method: LieMethod,
    /// Finite-difference step of translations, in pixels.
    pub step_px: f64,
    /// Finite-difference step of rotations, in degrees.
    pub step_deg: f64,
    /// Edges of translations: zero fill or circular (rotations: zero fill).
    pub border: ShiftMode,
}

/// `kind = "worst_case"`: the grid is every (angle, dx, dy) combination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorstCaseSpec {
    /// Angles in degrees.
    pub angles_deg: Vec<f64>,
    /// Translations in pixels, used for both dx and dy.
    pub shifts_px: Vec<f64>,
    /// Broken inputs to keep in the sidecar (the first, in data order).
    pub examples: usize,
}

/// An entry being parsed: its remaining keys, and how errors name it.
struct Entry<'a> {
    origin: &'a str,
    label: String,
    table: Table,
}

impl Entry<'_> {
    fn err(&self, key: &str, message: impl std::fmt::Display) -> Error {
        plan_err(self.origin, format!("{}: `{key}` {message}", self.label))
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.table.remove(key)
    }

    fn string(&mut self, key: &str) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => {
                Err(self.err(key, format!("must be a string, found {}", other.type_str())))
            }
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> Result<bool> {
        match self.take(key) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(b),
            Some(other) => Err(self.err(
                key,
                format!("must be true or false, found {}", other.type_str()),
            )),
        }
    }

    fn int(&mut self, key: &str, min: i64, max: i64) -> Result<Option<usize>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Integer(i)) if (min..=max).contains(&i) => Ok(Some(i as usize)),
            Some(Value::Integer(i)) => {
                Err(self.err(key, format!("must be in {min}..={max}, found {i}")))
            }
            Some(other) => Err(self.err(
                key,
                format!("must be an integer, found {}", other.type_str()),
            )),
        }
    }

    fn number(v: &Value) -> Option<f64> {
        match v {
            Value::Float(f) => Some(*f),
            Value::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// A finite number in `[min, max]`.
    fn float(&mut self, key: &str, min: f64, max: f64) -> Result<Option<f64>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => match Self::number(&v) {
                Some(f) if f.is_finite() && f >= min && f <= max => Ok(Some(f)),
                Some(f) => Err(self.err(key, format!("must be in [{min}, {max}], found {f}"))),
                None => Err(self.err(key, format!("must be a number, found {}", v.type_str()))),
            },
        }
    }

    fn array(&mut self, key: &str) -> Result<Option<Vec<Value>>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(items)) if items.is_empty() => {
                Err(self.err(key, "must not be empty"))
            }
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => {
                Err(self.err(key, format!("must be an array, found {}", other.type_str())))
            }
        }
    }

    /// A non-empty list of finite numbers in `[min, max]`, no duplicates.
    fn floats(&mut self, key: &str, min: f64, max: f64) -> Result<Option<Vec<f64>>> {
        let Some(items) = self.array(key)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(items.len());
        for v in &items {
            match Self::number(v) {
                Some(f) if f.is_finite() && f >= min && f <= max => {
                    if out.contains(&f) {
                        return Err(self.err(key, format!("lists {f} twice")));
                    }
                    out.push(f);
                }
                Some(f) => {
                    return Err(
                        self.err(key, format!("values must be in [{min}, {max}], found {f}"))
                    )
                }
                None => {
                    return Err(self.err(
                        key,
                        format!("values must be numbers, found {}", v.type_str()),
                    ))
                }
            }
        }
        Ok(Some(out))
    }

    /// A non-empty list of integers in `min..=max`, no duplicates.
    fn ints(&mut self, key: &str, min: i64, max: i64) -> Result<Option<Vec<usize>>> {
        let Some(items) = self.array(key)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(items.len());
        for v in &items {
            match v {
                Value::Integer(i) if (min..=max).contains(i) => {
                    if out.contains(&(*i as usize)) {
                        return Err(self.err(key, format!("lists {i} twice")));
                    }
                    out.push(*i as usize);
                }
                Value::Integer(i) => {
                    return Err(self.err(key, format!("values must be in {min}..={max}, found {i}")))
                }
                other => {
                    return Err(self.err(
                        key,
                        format!("values must be integers, found {}", other.type_str()),
                    ))
                }
            }
        }
        Ok(Some(out))
    }

    /// A non-empty list of names, each one of `known`, no duplicates.
    fn names<T: Copy + PartialEq>(
        &mut self,
        key: &str,
        known: &[(&str, T)],
    ) -> Result<Option<Vec<T>>> {
        let Some(items) = self.array(key)? else {
            return Ok(None);
        };
        let list = known.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        let mut out = Vec::with_capacity(items.len());
        for v in &items {
            let Value::String(s) = v else {
                return Err(self.err(
                    key,
                    format!("values must be strings, found {}", v.type_str()),
                ));
            };
            let Some(&(_, t)) = known.iter().find(|(n, _)| n == s) else {
                return Err(self.err(key, format!("\"{s}\" is not known (known: {list})")));
            };
            if out.contains(&t) {
                return Err(self.err(key, format!("lists \"{s}\" twice")));
            }
            out.push(t);
        }
        Ok(Some(out))
    }

    /// One of `known`, by name.
    fn choice<T: Copy>(&mut self, key: &str, known: &[(&str, T)], default: T) -> Result<T> {
        match self.string(key)? {
            None => Ok(default),
            Some(s) => match known.iter().find(|(n, _)| *n == s) {
                Some(&(_, t)) => Ok(t),
                None => {
                    let list = known.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
                    Err(self.err(key, format!("\"{s}\" is not known (known: {list})")))
                }
            },
        }
    }

    fn finish(self) -> Result<()> {
        if let Some(key) = self.table.keys().next() {
            return Err(self.err(key, "is not a known key for this kind"));
        }
        Ok(())
    }
}

fn plan_err(origin: &str, message: impl Into<String>) -> Error {
    Error::Plan {
        origin: origin.to_string(),
        message: message.into(),
    }
}

/// The top-level keys this module reads.
pub const KEYS: &[&str] = &["stress", "equivariance"];

/// The kinds of `[[stress]]` entries.
pub const STRESS_KINDS: &[&str] = &["alpha_scaling", "noise", "calibration", "corruptions"];

/// The kinds of `[[equivariance]]` entries.
pub const EQUIVARIANCE_KINDS: &[&str] =
    &["shift", "rotation", "flip", "lie_derivative", "worst_case"];

/// Removes `stress` and `equivariance` from a plan's top-level table and
/// parses them.
pub fn parse(top: &mut Table, origin: &str) -> Result<(Vec<StressSpec>, Vec<EquivarianceSpec>)> {
    let mut stress = Vec::new();
    for mut e in entries(top, "stress", origin)? {
        let name = entry_name(&mut e)?;
        let check = parse_stress(&mut e)?;
        e.finish()?;
        if stress.iter().any(|s: &StressSpec| s.name == name) {
            return Err(plan_err(
                origin,
                format!("stress entry \"{name}\": `name` is used twice; names must be unique"),
            ));
        }
        stress.push(StressSpec { name, check });
    }
    let mut equivariance = Vec::new();
    for mut e in entries(top, "equivariance", origin)? {
        let name = entry_name(&mut e)?;
        let check = parse_equivariance(&mut e)?;
        e.finish()?;
        if equivariance
            .iter()
            .any(|s: &EquivarianceSpec| s.name == name)
        {
            return Err(plan_err(
                origin,
                format!(
                    "equivariance entry \"{name}\": `name` is used twice; names must be unique"
                ),
            ));
        }
        equivariance.push(EquivarianceSpec { name, check });
    }
    Ok((stress, equivariance))
}

fn entries<'a>(top: &mut Table, key: &str, origin: &'a str) -> Result<Vec<Entry<'a>>> {
    let items = match top.remove(key) {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(plan_err(
                origin,
                format!("`{key}` must be an array of tables ([[{key}]])"),
            ))
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Table(table) = item else {
            return Err(plan_err(origin, format!("{key}[{i}] must be a table")));
        };
        let label = match table.get("name").and_then(|v| v.as_str()) {
            Some(n) => format!("{key}[{i}] \"{n}\""),
            None => format!("{key}[{i}]"),
        };
        out.push(Entry {
            origin,
            label,
            table,
        });
    }
    Ok(out)
}

fn entry_name(e: &mut Entry) -> Result<String> {
    let name = e
        .string("name")?
        .ok_or_else(|| e.err("name", "is missing"))?;
    if name.is_empty() || name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err(e.err(
            "name",
            "must be non-empty, without slashes or control characters",
        ));
    }
    Ok(name)
}

fn kind(e: &mut Entry, known: &[&str]) -> Result<String> {
    let kind = e
        .string("kind")?
        .ok_or_else(|| e.err("kind", format!("is missing (one of {})", known.join(", "))))?;
    if !known.contains(&kind.as_str()) {
        return Err(e.err(
            "kind",
            format!(
                "\"{kind}\" is not a known kind (known: {}){}",
                known.join(", "),
                crate::plan::legacy_entry::did_you_mean(&kind, known)
            ),
        ));
    }
    Ok(kind)
}

/// Default α grid: dense near 1, where MNIST models already saturate.
pub const DEFAULT_ALPHAS: &[f64] = &[
    1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0,
];

fn parse_stress(e: &mut Entry) -> Result<StressCheck> {
    // Large enough for any sensible plan, small enough to catch typos.
    const MAX_COUNT: i64 = 10_000_000;
    Ok(match kind(e, STRESS_KINDS)?.as_str() {
        "alpha_scaling" => {
            let inputs = e
                .names(
                    "inputs",
                    &[
                        ("uniform", AlphaInputs::Uniform),
                        ("data", AlphaInputs::Data),
                    ],
                )?
                .unwrap_or_else(|| vec![AlphaInputs::Uniform, AlphaInputs::Data]);
            let count = e.int("count", 1, MAX_COUNT)?;
            let alphas = e
                .floats("alphas", 1.0, 1e12)?
                .unwrap_or_else(|| DEFAULT_ALPHAS.to_vec());
            if alphas[0] != 1.0 || alphas.windows(2).any(|w| w[1] <= w[0]) {
                return Err(e.err("alphas", "must start at 1 and increase"));
            }
            let target_confidence = e.float("target_confidence", 0.0, 1.0)?.unwrap_or(0.999);
            if target_confidence <= 0.0 || target_confidence >= 1.0 {
                return Err(e.err(
                    "target_confidence",
                    format!("must be strictly between 0 and 1, found {target_confidence}"),
                ));
            }
            let bisection_steps = e.int("bisection_steps", 0, 60)?.unwrap_or(10);
            StressCheck::AlphaScaling(AlphaScalingSpec {
                inputs,
                count,
                alphas,
                target_confidence,
                bisection_steps,
                save_inputs: e.boolean("save_inputs", false)?,
            })
        }
        "noise" => {
            let known: Vec<(&str, NoiseFamily)> =
                NoiseFamily::ALL.iter().map(|f| (f.as_str(), *f)).collect();
            StressCheck::Noise(NoiseSpec {
                families: e
                    .names("families", &known)?
                    .unwrap_or_else(|| NoiseFamily::ALL.to_vec()),
                count: e.int("count", 1, MAX_COUNT)?,
                examples: e.int("examples", 0, 10_000)?.unwrap_or(8),
                save_inputs: e.boolean("save_inputs", false)?,
            })
        }
        "calibration" => StressCheck::Calibration(CalibrationSpec {
            bins: e.int("bins", 1, 10_000)?.unwrap_or(15),
        }),
        _ => {
            let known: Vec<(&str, Corruption)> =
                Corruption::ALL.iter().map(|c| (c.as_str(), *c)).collect();
            StressCheck::Corruptions(CorruptionsSpec {
                corruptions: e
                    .names("corruptions", &known)?
                    .unwrap_or_else(|| Corruption::ALL.to_vec()),
                severities: e
                    .ints("severities", 1, 5)?
                    .unwrap_or_else(|| vec![1, 2, 3, 4, 5]),
            })
        }
    })
}

fn expectation(e: &mut Entry, invariant_by_default: bool) -> Result<Expectation> {
    Ok(Expectation {
        expect_invariant: e.boolean("expect_invariant", invariant_by_default)?,
        min_consistency: e.float("min_consistency", 0.0, 1.0)?.unwrap_or(0.9),
        examples: e.int("examples", 0, 10_000)?.unwrap_or(8),
    })
}

fn parse_equivariance(e: &mut Entry) -> Result<EquivarianceCheck> {
    const MODES: &[(&str, ShiftMode)] =
        &[("circular", ShiftMode::Circular), ("zero", ShiftMode::Zero)];
    Ok(match kind(e, EQUIVARIANCE_KINDS)?.as_str() {
        "shift" => EquivarianceCheck::Shift(ShiftSpec {
            mode: e.choice("mode", MODES, ShiftMode::Circular)?,
            pixels: e.ints("pixels", 1, 4096)?.unwrap_or_else(|| vec![1, 2, 3]),
            expectation: expectation(e, true)?,
        }),
        "rotation" => EquivarianceCheck::Rotation(RotationSpec {
            angles_deg: e
                .floats("angles_deg", -360.0, 360.0)?
                .unwrap_or_else(|| vec![-30.0, -15.0, -5.0, 5.0, 15.0, 30.0]),
            expectation: expectation(e, true)?,
        }),
        "flip" => EquivarianceCheck::Flip(FlipSpec {
            axes: e
                .names(
                    "axes",
                    &[
                        ("horizontal", FlipAxis::Horizontal),
                        ("vertical", FlipAxis::Vertical),
                    ],
                )?
                .unwrap_or_else(|| vec![FlipAxis::Horizontal, FlipAxis::Vertical]),
            expectation: expectation(e, false)?,
        }),
        "lie_derivative" => {
            let transforms = e
                .names(
                    "transforms",
                    &[
                        ("translate_x", LieTransform::TranslateX),
                        ("translate_y", LieTransform::TranslateY),
                        ("rotate", LieTransform::Rotate),
                    ],
                )?
                .unwrap_or_else(|| {
                    vec![
                        LieTransform::TranslateX,
                        LieTransform::TranslateY,
                        LieTransform::Rotate,
                    ]
                });
            let method = e.choice(
                "method",
                &[
                    ("exact", LieMethod::Exact),
                    ("finite_difference", LieMethod::FiniteDifference),
                ],
                LieMethod::Exact,
            )?;
            let step_px = e.float("step_px", 0.0, 1.0)?.unwrap_or(0.01);
            let step_deg = e.float("step_deg", 0.0, 45.0)?.unwrap_or(0.1);
            for (key, v) in [("step_px", step_px), ("step_deg", step_deg)] {
                if v <= 0.0 {
                    return Err(e.err(key, "must be positive"));
                }
            }
            EquivarianceCheck::LieDerivative(LieDerivativeSpec {
                transforms,
                method,
                step_px,
                step_deg,
                border: e.choice("border", MODES, ShiftMode::Zero)?,
            })
        }
        _ => EquivarianceCheck::WorstCase(WorstCaseSpec {
            angles_deg: e
                .floats("angles_deg", -360.0, 360.0)?
                .unwrap_or_else(|| vec![-30.0, -15.0, 0.0, 15.0, 30.0]),
            shifts_px: e
                .floats("shifts_px", -4096.0, 4096.0)?
                .unwrap_or_else(|| vec![-2.0, 0.0, 2.0]),
            examples: e.int("examples", 0, 10_000)?.unwrap_or(8),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<(Vec<StressSpec>, Vec<EquivarianceSpec>)> {
        let mut top: Table = text.parse().unwrap();
        parse(&mut top, "p.toml")
    }

    fn err(text: &str) -> String {
        parse_text(text).unwrap_err().to_string()
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
            e.contains("`cuont`") && e.contains("not a known key"),
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
        assert!(e.contains("twice"), "{e}");
        let e = err("stress = 3\n");
        assert!(e.contains("[[stress]]"), "{e}");
        let e = err("[[stress]]\nkind = \"noise\"\n");
        assert!(e.contains("`name` is missing"), "{e}");
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
