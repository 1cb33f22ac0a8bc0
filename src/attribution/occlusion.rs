//! Occlusion (Zeiler & Fergus 2014) with Captum's semantics: a window (all
//! channels) slides over the image with a stride, ⌈(H − h)/s⌉ + 1 positions
//! per axis (the last window cropped at the border); each occluded copy has
//! the window set to a baseline value, and each pixel's attribution is the
//! mean, over the windows covering it, of the drop of the explained logit
//! `z_c(x) − z_c(x occluded)`. Forward passes only.
//!
//! Plan keys ([`OcclusionConfig`]): `window`, `stride`, `baseline_value`.

use serde::{Deserialize, Serialize};

use super::{
    check_batch, class_scores, tensor4, tile_classes, Attribution, ExplainBatch, Explanation, Fill,
    MethodSettings, SettingError, MAX_FORWARD_ROWS,
};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::model::{ArchSpec, Classifier};

/// The window, pixels.
pub const DEFAULT_WINDOW: [usize; 2] = [4, 4];

/// The value occluded pixels take by default: 0 in input units (Captum's).
pub const DEFAULT_BASELINE_VALUE: Fill = Fill::Value(0.0);

/// The stride for a window: half the window (at least 1).
pub fn default_stride(window: [usize; 2]) -> [usize; 2] {
    [(window[0] / 2).max(1), (window[1] / 2).max(1)]
}

/// The `occlusion` method's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct OcclusionConfig {
    /// Window `[height, width]` in pixels (a plan may give one integer;
    /// default 4×4).
    pub window: [usize; 2],
    /// Stride `[vertical, horizontal]` in pixels (default: half the window,
    /// at least 1).
    #[schemars(extend("x-taplo" = {"docs": {"defaultValue": "half the window, at least 1"}}))]
    pub stride: [usize; 2],
    /// The value occluded pixels take: a number in input units, `"zero"`,
    /// or `"black"`, the low end of the model's range (default 0).
    pub baseline_value: Fill,
}

impl Default for OcclusionConfig {
    fn default() -> Self {
        OcclusionConfig {
            window: DEFAULT_WINDOW,
            stride: default_stride(DEFAULT_WINDOW),
            baseline_value: DEFAULT_BASELINE_VALUE,
        }
    }
}

impl MethodSettings for OcclusionConfig {
    type Method = Occlusion;

    fn from_entry(e: &mut Entry) -> Self {
        let window = e.size2("window").unwrap_or(DEFAULT_WINDOW);
        OcclusionConfig {
            window,
            stride: e.size2("stride").unwrap_or(default_stride(window)),
            baseline_value: Fill::from_entry(e, "baseline_value").unwrap_or(DEFAULT_BASELINE_VALUE),
        }
    }

    /// The window must fit the input, and the stride must not skip pixels.
    fn resolve(&mut self, model: &ArchSpec) -> std::result::Result<(), SettingError> {
        let [_, h, w] = model.input.shape;
        self.build((h, w)).validate().map_err(|message| {
            let key = if message.starts_with("window") {
                "window"
            } else {
                "stride"
            };
            SettingError { key, message }
        })
    }

    fn build(&self, input_hw: (usize, usize)) -> Occlusion {
        Occlusion {
            window: (self.window[0], self.window[1]),
            stride: (self.stride[0], self.stride[1]),
            baseline: self.baseline_value,
            input_hw,
        }
    }
}

/// Sliding-window occlusion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Occlusion {
    /// Window `(height, width)`, pixels.
    pub window: (usize, usize),
    /// Stride `(vertical, horizontal)`, pixels.
    pub stride: (usize, usize),
    /// The value occluded pixels take (a number in input units, or black,
    /// the low end of the model's range).
    pub baseline: Fill,
    /// The input's `(height, width)`, to count the windows.
    pub input_hw: (usize, usize),
}

/// Window positions along one axis (Captum's shift count).
pub fn positions(len: usize, window: usize, stride: usize) -> Vec<usize> {
    let count = (len - window).div_ceil(stride) + 1;
    (0..count).map(|k| k * stride).collect()
}

impl Occlusion {
    /// The windows, as `(top, left)` in row-major order.
    pub fn windows(&self) -> Vec<(usize, usize)> {
        let (h, w) = self.input_hw;
        let mut out = Vec::new();
        for top in positions(h, self.window.0, self.stride.0) {
            for left in positions(w, self.window.1, self.stride.1) {
                out.push((top, left));
            }
        }
        out
    }

    /// Checks the window against the input (Captum's rules): it fits, and
    /// the stride does not skip pixels.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let (h, w) = self.input_hw;
        let (wh, ww) = self.window;
        let (sh, sw) = self.stride;
        if wh == 0 || ww == 0 || wh > h || ww > w {
            return Err(format!(
                "window {wh}×{ww} must be at least 1×1 and fit the {h}×{w} input"
            ));
        }
        if sh == 0 || sw == 0 || (sh > wh && wh < h) || (sw > ww && ww < w) {
            return Err(format!(
                "stride {sh}×{sw} must be at least 1 and at most the window {wh}×{ww}"
            ));
        }
        Ok(())
    }
}

impl Attribution for Occlusion {
    fn explain(&self, model: &dyn Classifier, batch: &ExplainBatch) -> Result<Explanation> {
        let shape = check_batch(model, batch)?;
        let [n, c, h, w] = shape;
        if (h, w) != self.input_hw {
            return Err(Error::Invalid(format!(
                "occlusion set up for {:?} inputs, got {h}×{w}",
                self.input_hw
            )));
        }
        self.validate().map_err(Error::Invalid)?;
        let per = c * h * w;
        let x: Vec<f32> = batch.x.flatten_all()?.to_vec1()?;
        let clean = class_scores(model, &model.logits(batch.x)?, batch.classes)?;
        let fill = self.baseline.resolve(model.input_range());
        let windows = self.windows();
        let mut total = vec![0f32; n * h * w];
        let mut count = vec![0f32; h * w];
        for &(top, left) in &windows {
            for y in top..(top + self.window.0).min(h) {
                for xx in left..(left + self.window.1).min(w) {
                    count[y * w + xx] += 1.0;
                }
            }
        }
        let per_call = (MAX_FORWARD_ROWS / n.max(1)).max(1);
        for first in (0..windows.len()).step_by(per_call) {
            let chunk = &windows[first..(first + per_call).min(windows.len())];
            let mut rows = Vec::with_capacity(chunk.len() * n * per);
            for &(top, left) in chunk {
                let start = rows.len();
                rows.extend_from_slice(&x);
                for i in 0..n {
                    for ch in 0..c {
                        for y in top..(top + self.window.0).min(h) {
                            for xx in left..(left + self.window.1).min(w) {
                                rows[start + i * per + ch * h * w + y * w + xx] = fill;
                            }
                        }
                    }
                }
            }
            let rows_n = chunk.len() * n;
            let logits = model.logits(&tensor4(rows, [rows_n, c, h, w])?)?;
            let z = class_scores(model, &logits, &tile_classes(batch.classes, chunk.len()))?;
            for (k, &(top, left)) in chunk.iter().enumerate() {
                for i in 0..n {
                    let drop = clean[i] - z[k * n + i];
                    for y in top..(top + self.window.0).min(h) {
                        for xx in left..(left + self.window.1).min(w) {
                            total[i * h * w + y * w + xx] += drop;
                        }
                    }
                }
            }
        }
        let mut maps = vec![0f32; n * per];
        for i in 0..n {
            for ch in 0..c {
                for p in 0..h * w {
                    maps[i * per + ch * h * w + p] = if count[p] > 0.0 {
                        total[i * h * w + p] / count[p]
                    } else {
                        0.0
                    };
                }
            }
        }
        Ok(Explanation::maps(tensor4(maps, shape)?))
    }

    fn model_calls(&self) -> usize {
        self.windows().len() + 1
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::attribution::test_models::linear;

    #[test]
    fn window_positions_follow_captum() {
        assert_eq!(
            positions(28, 4, 4),
            (0..7).map(|k| 4 * k).collect::<Vec<_>>()
        );
        // ⌈23/2⌉ + 1 = 13 windows, the last cropped to 24..28.
        assert_eq!(positions(28, 5, 2).len(), 13);
        assert_eq!(positions(5, 5, 1), [0]);
    }

    /// A linear model that ignores the right half of a 4×8 image: occluding
    /// windows inside that half changes nothing, so their pixels get zero;
    /// on the left half, with non-overlapping windows, every pixel of a
    /// window gets the window's whole contribution Σ w·x (Captum's rule).
    /// One output: class 1 explains z.
    #[test]
    fn occluding_a_region_the_model_ignores_gives_zero() {
        let (h, w) = (4, 8);
        let mut weights = vec![0f32; h * w];
        for y in 0..h {
            for x in 0..4 {
                weights[y * w + x] = 0.1 + (y * 4 + x) as f32 * 0.05;
            }
        }
        let net = linear(h, w, &weights, &[0.5]);
        let xs: Vec<f32> = (0..h * w).map(|i| 0.2 + (i % 5) as f32 * 0.15).collect();
        let x = Tensor::from_slice(&xs, (1, 1, h, w), &Device::Cpu).unwrap();
        let occ = Occlusion {
            window: (2, 2),
            stride: (2, 2),
            baseline: crate::attribution::Fill::Value(0.0),
            input_hw: (h, w),
        };
        let m: Vec<f32> = occ
            .explain(
                &net,
                &ExplainBatch {
                    x: &x,
                    classes: &[1],
                    first_index: 0,
                    seed: 0,
                    stream: 0,
                },
            )
            .unwrap()
            .maps
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for y in 0..h {
            for x in 4..w {
                assert_eq!(m[y * w + x], 0.0, "pixel ({y}, {x})");
            }
        }
        for top in [0, 2] {
            for left in [0, 2] {
                let mut contribution = 0f32;
                for y in top..top + 2 {
                    for x in left..left + 2 {
                        contribution += weights[y * w + x] * xs[y * w + x];
                    }
                }
                let v = m[top * w + left];
                assert!((v - contribution).abs() < 1e-5, "{v} vs {contribution}");
                assert!(v > 0.0);
            }
        }
    }

    #[test]
    fn bad_windows_are_refused() {
        let mut occ = Occlusion {
            window: (5, 5),
            stride: (6, 1),
            baseline: crate::attribution::Fill::Value(0.0),
            input_hw: (28, 28),
        };
        assert!(occ.validate().unwrap_err().contains("stride"));
        occ.window = (29, 2);
        assert!(occ.validate().unwrap_err().contains("window"));
    }
}
