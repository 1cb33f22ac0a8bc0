//! Sanity checks for attribution maps: does a map depend on the model at
//! all, and on the class it explains?
//!
//! - **Cascading model-parameter randomization** (Adebayo et al., NeurIPS
//!   2018, "Sanity checks for saliency maps"): the layers with parameters are
//!   re-initialized one more at a time from the output down
//!   ([`crate::model::reinit`]), and after each step the maps of the same
//!   inputs, for the same classes and with the same random draws, are
//!   compared with the trained model's. A map that explains the model should
//!   lose its similarity as the cascade goes down.
//! - **Independent layer randomization** (same paper): one layer at a time,
//!   the others trained.
//! - **Random-logit test** (Sixt, Granz & Landgraf, ICML 2020, "When
//!   explanations lie"): the map for a random other class (uniform over the
//!   classes but the explained one) against the map for the explained class;
//!   a map that barely changes does not explain the class.
//!
//! Similarities, per input then averaged over the inputs checked, on the
//! per-pixel scores (channels summed, as every metric here):
//! Spearman's rank correlation of the absolute scores and of the signed
//! ones, SSIM of the absolute scores each scaled to `[0, 1]` by its maximum
//! (Wang et al. 2004 with scikit-image's `structural_similarity` defaults: a
//! 7×7 uniform window, K1 0.01, K2 0.03, sample covariances, the mean over
//! the windows inside the image), and the top-k overlap by magnitude (k as
//! the entry's `top_k_fraction`). Beside them, the same similarities
//! between the trained model's map and a model-independent edge detector
//! (the Sobel gradient magnitude of the input), the reference point
//! Adebayo et al. showed: how much of a map the input's edges alone explain.
//!
//! A method whose mean Spearman of absolute scores stays above `threshold`
//! after the full cascade (every layer re-initialized) is reported as
//! surviving randomization, and the audit raises a warning naming it.

use serde::{Deserialize, Serialize};

use super::metrics::{pixel_scores, spearman, spearman_signed, ssim, top_k_overlap};
use super::{tensor4, Attribution, ExplainBatch, Purpose};
use crate::entry::Entry;
use crate::error::Result;
use crate::model::{Classifier, Network};
use crate::rng::Rng;

/// Inputs checked by default: the first 16 (each cascade step explains them
/// all again).
pub const DEFAULT_SANITY_INPUTS: usize = 16;

/// Mean Spearman rank correlation of absolute scores above which a method
/// "survives" the full cascade (Adebayo et al. read their curves by eye;
/// a trained-vs-random map of an informative method falls well below it).
pub const DEFAULT_SANITY_THRESHOLD: f64 = 0.5;

/// One test of the sanity checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SanityTest {
    /// Cascading model-parameter randomization, output layer first.
    Cascading,
    /// Each layer re-initialized on its own.
    Independent,
    /// The map for a random other class.
    RandomLogit,
}

impl SanityTest {
    /// Names as written in plans (and serialized).
    pub const CHOICES: &'static [(&'static str, SanityTest)] = &[
        ("cascading", SanityTest::Cascading),
        ("independent", SanityTest::Independent),
        ("random_logit", SanityTest::RandomLogit),
    ];
}

/// An attribution entry's `sanity` settings, defaults filled in (the plan
/// keys live on [`super::AttributionSpec`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SanityConfig {
    /// The tests run (plan key `sanity`).
    pub tests: Vec<SanityTest>,
    /// How many of the first inputs are checked (key `sanity_inputs`,
    /// default 16).
    pub inputs: usize,
    /// The similarity above which a method survives the cascade (key
    /// `sanity_threshold`, in (0, 1], default 0.5).
    pub threshold: f64,
}

impl SanityConfig {
    /// Reads `sanity`, `sanity_inputs` and `sanity_threshold`; `None` when
    /// `sanity` is unset (the other two are then refused).
    pub fn from_entry(e: &mut Entry) -> Option<SanityConfig> {
        let tests = e.names("sanity", SanityTest::CHOICES);
        let inputs = e.positive_int("sanity_inputs");
        let threshold = e.positive_float("sanity_threshold");
        if threshold.is_some_and(|t| t > 1.0) {
            e.fail(
                "sanity_threshold",
                format!("must be in (0, 1], found {}", threshold.unwrap_or(0.0)),
            );
        }
        let Some(tests) = tests else {
            for (key, set) in [
                ("sanity_inputs", inputs.is_some()),
                ("sanity_threshold", threshold.is_some()),
            ] {
                if set {
                    e.fail(key, "applies only with `sanity` (the tests to run)");
                }
            }
            return None;
        };
        Some(SanityConfig {
            tests,
            inputs: inputs.unwrap_or(DEFAULT_SANITY_INPUTS),
            threshold: threshold
                .filter(|t| *t <= 1.0)
                .unwrap_or(DEFAULT_SANITY_THRESHOLD),
        })
    }

    /// Whether `test` runs.
    pub fn runs(&self, test: SanityTest) -> bool {
        self.tests.contains(&test)
    }
}

/// Two sets of maps' similarity, averaged over the inputs (a correlation is
/// `None` when a map is constant for every input).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Similarity {
    /// Spearman's rank correlation of the absolute per-pixel scores.
    pub spearman_abs: Option<f64>,
    /// Spearman's rank correlation of the signed per-pixel scores.
    pub spearman: Option<f64>,
    /// SSIM of the absolute scores, each scaled to `[0, 1]` by its maximum
    /// (`None`: images smaller than the 7×7 window).
    pub ssim: Option<f64>,
    /// Share of one map's top-k pixels (by magnitude) in the other's.
    pub top_k_overlap: f64,
}

/// One step of a randomization test: the layer re-initialized (in a
/// cascade, with every layer above it) and the maps' similarity to the
/// trained model's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RandomizedLayer {
    /// The layer's spec path.
    pub layer: String,
    /// Against the trained model's maps.
    pub similarity: Similarity,
}

/// One method's sanity checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SanityResults {
    /// Inputs checked (the first ones).
    pub inputs: usize,
    /// The threshold on the mean Spearman of absolute scores.
    pub threshold: f64,
    /// The trained model's maps against the input's Sobel edge map: the
    /// similarity the input's structure alone gives.
    pub edge_reference: Similarity,
    /// Cascading randomization, output layer first (empty: not run).
    pub cascading: Vec<RandomizedLayer>,
    /// Each layer re-initialized alone, output layer first (empty: not run).
    pub independent: Vec<RandomizedLayer>,
    /// The map for a random other class against the explained class's.
    pub random_logit: Option<Similarity>,
    /// Whether the maps stay above the threshold with every layer
    /// re-initialized (`None`: the cascade did not run).
    pub survives_randomization: Option<bool>,
    /// The same similarities for each checked input on its own:
    /// `per_input[i]` is `samples[i]` of the report (the checked inputs are
    /// the first ones). The fields above are their means.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_input: Vec<InputSanity>,
}

/// One checked input's sanity results (a [`Similarity`] here is of this
/// input's maps alone; a correlation is `None` when a map is constant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InputSanity {
    /// The trained model's map against the input's Sobel edge map.
    pub edge_reference: Similarity,
    /// Cascading randomization, one per step as in
    /// [`SanityResults::cascading`] (empty: not run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cascading: Vec<Similarity>,
    /// Independent randomization, one per layer as in
    /// [`SanityResults::independent`] (empty: not run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub independent: Vec<Similarity>,
    /// The map for the random other class against the explained class's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_logit: Option<Similarity>,
}

/// The model under test: the network to re-initialize and how the audit
/// runs a network (its engine).
pub struct ModelSource<'a> {
    /// The trained network.
    pub network: &'a Network,
    /// Builds the classifier the audit uses for a network.
    pub build: &'a dyn Fn(&Network) -> Result<Box<dyn Classifier>>,
}

/// The inputs checked and their trained-model maps.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a> {
    /// `[n, C, H, W]` row-major, the first `n` inputs of the audit.
    pub inputs: &'a [f32],
    /// `[n, C, H, W]`.
    pub shape: [usize; 4],
    /// The explained class per input.
    pub classes: &'a [u32],
    /// The trained model's maps, `[n, C, H, W]`.
    pub maps: &'a [f32],
}

/// Everything a map needs besides the model: the method, its seed and
/// stream (the same as the audit's, so random methods draw the same noise
/// on every model), the batch size and top-k.
pub struct MapSettings<'a> {
    /// The method.
    pub method: &'a dyn Attribution,
    /// The audit's seed.
    pub seed: u64,
    /// The entry's stream.
    pub stream: u64,
    /// Inputs per call.
    pub batch_size: usize,
    /// Pixels compared by the top-k overlap.
    pub top_k: usize,
}

/// Runs the tests `config` asks for on `checked` (see the module docs).
///
/// # Errors
/// A model or method failure.
pub fn run_sanity(
    source: &ModelSource,
    model: &dyn Classifier,
    settings: &MapSettings,
    config: &SanityConfig,
    checked: Checked,
) -> Result<SanityResults> {
    let [n, c, h, w] = checked.shape;
    let edges = sobel_edges(checked.inputs, checked.shape);
    let edge_inputs = per_input_similarity(checked.maps, &edges, c, h, w, settings.top_k);
    let layers = source.network.parameter_layers();
    let compare = |net: &Network| -> Result<Vec<Similarity>> {
        let model = (source.build)(net)?;
        let maps = explain_all(model.as_ref(), settings, checked, checked.classes)?;
        Ok(per_input_similarity(
            checked.maps,
            &maps,
            c,
            h,
            w,
            settings.top_k,
        ))
    };
    let mut per_input: Vec<InputSanity> = edge_inputs
        .iter()
        .map(|&edge_reference| InputSanity {
            edge_reference,
            cascading: Vec::new(),
            independent: Vec::new(),
            random_logit: None,
        })
        .collect();
    let mut cascading = Vec::new();
    if config.runs(SanityTest::Cascading) {
        for k in (0..layers.len()).rev() {
            let nodes: Vec<usize> = layers[k..].iter().map(|l| l.node).collect();
            let net = source.network.reinitialized(&nodes, settings.seed)?;
            let each = compare(&net)?;
            for (p, s) in per_input.iter_mut().zip(&each) {
                p.cascading.push(*s);
            }
            cascading.push(RandomizedLayer {
                layer: layers[k].name.clone(),
                similarity: mean_similarity(&each),
            });
        }
    }
    let mut independent = Vec::new();
    if config.runs(SanityTest::Independent) {
        for l in layers.iter().rev() {
            let net = source.network.reinitialized(&[l.node], settings.seed)?;
            let each = compare(&net)?;
            for (p, s) in per_input.iter_mut().zip(&each) {
                p.independent.push(*s);
            }
            independent.push(RandomizedLayer {
                layer: l.name.clone(),
                similarity: mean_similarity(&each),
            });
        }
    }
    let random_logit = if config.runs(SanityTest::RandomLogit) {
        let others = random_other_classes(checked.classes, model.num_classes(), settings);
        let maps = explain_all(model, settings, checked, &others)?;
        let each = per_input_similarity(checked.maps, &maps, c, h, w, settings.top_k);
        for (p, s) in per_input.iter_mut().zip(&each) {
            p.random_logit = Some(*s);
        }
        Some(mean_similarity(&each))
    } else {
        None
    };
    let survives_randomization = cascading.last().map(|last| {
        last.similarity
            .spearman_abs
            .is_some_and(|s| s > config.threshold)
    });
    Ok(SanityResults {
        inputs: n,
        threshold: config.threshold,
        edge_reference: mean_similarity(&edge_inputs),
        cascading,
        independent,
        random_logit,
        survives_randomization,
        per_input,
    })
}

/// For each input, a class drawn uniformly from the others (keyed by the
/// seed, the entry and the input's position).
fn random_other_classes(classes: &[u32], k: usize, settings: &MapSettings) -> Vec<u32> {
    classes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let mut rng = Rng::for_item(
                settings.seed,
                settings.stream + Purpose::RandomLogit as u64,
                i as u64,
            );
            let r = rng.below(k.saturating_sub(1).max(1) as u64) as u32;
            if r >= c {
                r + 1
            } else {
                r
            }
        })
        .collect()
}

/// The method's maps of every checked input for `classes`, in batches, with
/// the audit's draws (first index 0: the checked inputs are the first ones).
fn explain_all(
    model: &dyn Classifier,
    settings: &MapSettings,
    checked: Checked,
    classes: &[u32],
) -> Result<Vec<f32>> {
    let [n, c, h, w] = checked.shape;
    let per = c * h * w;
    let step = settings.batch_size.max(1);
    let mut out = Vec::with_capacity(n * per);
    for first in (0..n).step_by(step) {
        let len = step.min(n - first);
        let x = tensor4(
            checked.inputs[first * per..(first + len) * per].to_vec(),
            [len, c, h, w],
        )?;
        let batch = ExplainBatch {
            x: &x,
            classes: &classes[first..first + len],
            first_index: first,
            seed: settings.seed,
            stream: settings.stream,
        };
        let maps = settings.method.explain(model, &batch)?.maps;
        out.extend(maps.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

/// The similarity of maps `a` and `b` (`[n, C, H, W]` each; `b` may have
/// one channel, as the edge maps), per input.
fn per_input_similarity(
    a: &[f32],
    b: &[f32],
    c: usize,
    h: usize,
    w: usize,
    top_k: usize,
) -> Vec<Similarity> {
    let hw = h * w;
    let n = a.len() / (c * hw).max(1);
    let cb = b.len() / (n * hw).max(1);
    (0..n)
        .map(|i| {
            let pa = pixel_scores(&a[i * c * hw..(i + 1) * c * hw], c);
            let pb = pixel_scores(&b[i * cb * hw..(i + 1) * cb * hw], cb);
            let (aa, ab): (Vec<f32>, Vec<f32>) = (
                pa.iter().map(|v| v.abs()).collect(),
                pb.iter().map(|v| v.abs()).collect(),
            );
            Similarity {
                spearman_abs: spearman(&pa, &pb),
                spearman: spearman_signed(&pa, &pb),
                ssim: ssim(&scaled(&aa), &scaled(&ab), h, w),
                top_k_overlap: top_k_overlap(&pa, &pb, top_k),
            }
        })
        .collect()
}

/// The mean of per-input similarities (a correlation over the inputs where
/// it is defined; `None` where it is for none).
fn mean_similarity(each: &[Similarity]) -> Similarity {
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    Similarity {
        spearman_abs: mean(each.iter().filter_map(|s| s.spearman_abs).collect()),
        spearman: mean(each.iter().filter_map(|s| s.spearman).collect()),
        ssim: mean(each.iter().filter_map(|s| s.ssim).collect()),
        top_k_overlap: if each.is_empty() {
            0.0
        } else {
            each.iter().map(|s| s.top_k_overlap).sum::<f64>() / each.len() as f64
        },
    }
}

/// The mean similarity of maps `a` and `b` over the inputs.
#[cfg(test)]
fn similarity(a: &[f32], b: &[f32], c: usize, h: usize, w: usize, top_k: usize) -> Similarity {
    mean_similarity(&per_input_similarity(a, b, c, h, w, top_k))
}

/// Non-negative scores divided by their maximum (all zeros stay zeros).
fn scaled(v: &[f32]) -> Vec<f32> {
    let max = v.iter().fold(0f32, |m, x| m.max(*x));
    if max > 0.0 {
        v.iter().map(|x| x / max).collect()
    } else {
        v.to_vec()
    }
}

/// Sobel gradient magnitude of each input, summed over channels: `[n, 1, H,
/// W]` (replicated borders). It does not look at the model.
pub fn sobel_edges(x: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let [n, c, h, w] = shape;
    let mut out = vec![0f32; n * h * w];
    let at = |img: &[f32], r: isize, q: isize| -> f32 {
        let r = r.clamp(0, h as isize - 1) as usize;
        let q = q.clamp(0, w as isize - 1) as usize;
        img[r * w + q]
    };
    for i in 0..n {
        for ch in 0..c {
            let img = &x[(i * c + ch) * h * w..(i * c + ch + 1) * h * w];
            for r in 0..h as isize {
                for q in 0..w as isize {
                    let gx = (at(img, r - 1, q + 1)
                        + 2.0 * at(img, r, q + 1)
                        + at(img, r + 1, q + 1))
                        - (at(img, r - 1, q - 1) + 2.0 * at(img, r, q - 1) + at(img, r + 1, q - 1));
                    let gy = (at(img, r + 1, q - 1)
                        + 2.0 * at(img, r + 1, q)
                        + at(img, r + 1, q + 1))
                        - (at(img, r - 1, q - 1) + 2.0 * at(img, r - 1, q) + at(img, r - 1, q + 1));
                    out[i * h * w + r as usize * w + q as usize] += (gx * gx + gy * gy).sqrt();
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sobel_finds_a_vertical_edge_and_nothing_on_flat_regions() {
        // Left half 0, right half 1 on a 5×6 image.
        let (h, w) = (5, 6);
        let x: Vec<f32> = (0..h * w)
            .map(|i| if i % w >= 3 { 1.0 } else { 0.0 })
            .collect();
        let e = sobel_edges(&x, [1, 1, h, w]);
        for r in 0..h {
            for q in 0..w {
                let v = e[r * w + q];
                // |gx| = 4 next to the step (columns 2 and 3), 0 elsewhere.
                let want = if q == 2 || q == 3 { 4.0 } else { 0.0 };
                assert_eq!(v, want, "({r}, {q})");
            }
        }
    }

    #[test]
    fn similarity_of_a_map_with_itself_is_one_and_with_its_negation_signed_minus_one() {
        let (c, h, w) = (1, 8, 8);
        let a: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        let s = similarity(&a, &a, c, h, w, 6);
        assert!((s.spearman_abs.unwrap() - 1.0).abs() < 1e-12);
        assert!((s.spearman.unwrap() - 1.0).abs() < 1e-12);
        assert!((s.ssim.unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(s.top_k_overlap, 1.0);
        let neg: Vec<f32> = a.iter().map(|v| -v).collect();
        let s = similarity(&a, &neg, c, h, w, 6);
        assert!((s.spearman.unwrap() + 1.0).abs() < 1e-12);
        assert!((s.spearman_abs.unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn random_other_class_is_never_the_explained_one_and_covers_the_rest() {
        let method = crate::attribution::saliency::Saliency { abs: false };
        let settings = MapSettings {
            method: &method,
            seed: 3,
            stream: 0,
            batch_size: 4,
            top_k: 1,
        };
        let classes: Vec<u32> = (0..400).map(|i| (i % 10) as u32).collect();
        let others = random_other_classes(&classes, 10, &settings);
        assert!(others.iter().zip(&classes).all(|(o, c)| o != c && *o < 10));
        let mut seen = [0usize; 10];
        for o in &others {
            seen[*o as usize] += 1;
        }
        assert!(seen.iter().all(|&s| s > 20), "{seen:?}");
        // Two classes: always the other one.
        let two = random_other_classes(&[0, 1, 1, 0], 2, &settings);
        assert_eq!(two, [1, 0, 0, 1]);
    }

    #[test]
    fn config_reads_its_keys_and_refuses_them_without_sanity() {
        let table: toml::Table =
            toml::from_str("sanity = [\"cascading\", \"random_logit\"]\nsanity_inputs = 4")
                .unwrap();
        let mut e = Entry::new("attribution s".into(), table);
        let c = SanityConfig::from_entry(&mut e).unwrap();
        assert!(!e.failed());
        assert_eq!(c.tests, [SanityTest::Cascading, SanityTest::RandomLogit]);
        assert_eq!((c.inputs, c.threshold), (4, DEFAULT_SANITY_THRESHOLD));
        let table: toml::Table = toml::from_str("sanity_threshold = 0.3").unwrap();
        let mut e = Entry::new("attribution s".into(), table);
        assert!(SanityConfig::from_entry(&mut e).is_none());
        assert!(e.failed());
        let table: toml::Table = toml::from_str("sanity = [\"cascade\"]").unwrap();
        let mut e = Entry::new("attribution s".into(), table);
        assert!(SanityConfig::from_entry(&mut e).is_none());
        assert!(e.failed());
    }
}
