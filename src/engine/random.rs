//! The random layers on channel-last values: Monte-Carlo dropout and random
//! resizing and padding. Each row draws from its key exactly what the
//! reference draws ([`crate::model::draw`]): the same dropout mask (made in
//! PyTorch's NCHW order, then laid out channel-last) and the same placement,
//! so both engines see the same randomized model. A forward pass keeps each
//! row's mask or placement for the backward pass.

use super::compile::Shape;
use crate::model::draw::{dropout_mask, resize_pad_map};

/// Monte-Carlo dropout with probability `p`, at spec position `node`.
#[derive(Debug, Clone)]
pub struct Dropout {
    /// Drop probability.
    pub p: f64,
    /// The node's position (part of each row's random stream).
    pub node: usize,
    /// The value's per-sample shape.
    pub shape: Shape,
}

impl Dropout {
    /// The masks of `chunk` rows in the value's layout: row `r` from
    /// `keys[r]`, rows past the keys (padding) all kept.
    pub fn masks(&self, keys: &[u64], chunk: usize, masks: &mut Vec<f32>) {
        let len = self.shape.len();
        masks.clear();
        let mut row = Vec::with_capacity(len);
        for r in 0..chunk {
            let Some(&key) = keys.get(r) else {
                masks.resize(chunk * len, 1.0);
                break;
            };
            row.clear();
            dropout_mask(key, self.node, self.p, len, &mut row);
            match self.shape {
                // NCHW index ch·hw + pixel → channel-last pixel·c + ch.
                Shape::Spatial(h, w, c) => {
                    let hw = h * w;
                    masks.extend((0..hw * c).map(|i| row[(i % c) * hw + i / c]));
                }
                Shape::Flat(_) => masks.extend_from_slice(&row),
            }
        }
    }

    /// `y = x ⊙ mask` (also the backward pass: `dx = dy ⊙ mask`).
    pub fn apply(mask: &[f32], x: &[f32], y: &mut [f32]) {
        for ((y, x), m) in y.iter_mut().zip(x).zip(mask) {
            *y = x * m;
        }
    }
}

/// Random resizing of an `(h, w, c)` map to a height in `sizes` and
/// padding into a `canvas` filled with `value`, at spec position `node`.
#[derive(Debug, Clone)]
pub struct ResizePad {
    /// Input `(h, w, c)`.
    pub input: (usize, usize, usize),
    /// Smallest and largest resized height.
    pub sizes: (usize, usize),
    /// Output `(height, width)`.
    pub canvas: (usize, usize),
    /// The fill.
    pub value: f32,
    /// The node's position (part of each row's random stream).
    pub node: usize,
}

impl ResizePad {
    /// Each of `chunk` rows' placement (per canvas cell, its source pixel
    /// or `h · w` for the fill): row `r` from `keys[r]`, rows past the keys
    /// all fill.
    pub fn maps(&self, keys: &[u64], chunk: usize, maps: &mut Vec<u32>) {
        let (h, w, _) = self.input;
        let cells = self.canvas.0 * self.canvas.1;
        maps.clear();
        for r in 0..chunk {
            match keys.get(r) {
                Some(&key) => maps.extend(resize_pad_map(
                    key,
                    self.node,
                    (h, w),
                    self.sizes,
                    self.canvas,
                )),
                None => maps.resize(chunk * cells, (h * w) as u32),
            }
            if maps.len() == chunk * cells {
                break;
            }
        }
    }

    /// `y = place(x)` over `n` samples.
    pub fn forward(&self, n: usize, maps: &[u32], x: &[f32], y: &mut [f32]) {
        let (h, w, c) = self.input;
        let (cells, fill) = (self.canvas.0 * self.canvas.1, (h * w) as u32);
        for s in 0..n {
            for cell in 0..cells {
                let dst = (s * cells + cell) * c;
                let src = maps[s * cells + cell];
                if src == fill {
                    y[dst..dst + c].fill(self.value);
                } else {
                    let src = (s * h * w + src as usize) * c;
                    y[dst..dst + c].copy_from_slice(&x[src..src + c]);
                }
            }
        }
    }

    /// `dx = placeᵀ(dy)`: each input pixel sums the gradients of the cells
    /// showing it; the fill is a constant.
    pub fn backward(&self, n: usize, maps: &[u32], dy: &[f32], dx: &mut [f32]) {
        let (h, w, c) = self.input;
        let (cells, fill) = (self.canvas.0 * self.canvas.1, (h * w) as u32);
        dx[..n * h * w * c].fill(0.0);
        for s in 0..n {
            for cell in 0..cells {
                let src = maps[s * cells + cell];
                if src != fill {
                    let from = (s * cells + cell) * c;
                    let to = (s * h * w + src as usize) * c;
                    for k in 0..c {
                        dx[to + k] += dy[from + k];
                    }
                }
            }
        }
    }
}
