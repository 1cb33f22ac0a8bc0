//! The ops that place values side by side or combine two of them, and their
//! input gradients: `add` and `mul` of two values (equal shapes, or a
//! per-channel gate `[1, 1, c]` broadcast over a `[h, w, c]` map, as in
//! squeeze-and-excitation), `concat` along channels (or features), and
//! constant `pad2d`. All work on channel-last data, where a flat `[f]`
//! vector is a single position of `f` channels, so concatenating features
//! and channels is one kernel.
//!
//! A join reads several values, so its backward writes several gradients:
//! each is overwritten by the first branch that reaches it and added to by
//! the others (the caller's `written` flags say which), without scratch.

/// `dst = src` or `dst += src`, element-wise.
#[inline]
fn put(dst: &mut [f32], accumulate: bool, src: impl Iterator<Item = f32>) {
    if accumulate {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += s;
        }
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s;
        }
    }
}

/// Which element-wise combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// `a + b`.
    Add,
    /// `a · b`.
    Mul,
}

/// `out = input ∘ other`. The step's `input` is always the operand of the
/// output's shape; `other` has that shape too, or is a per-channel gate
/// (both ops commute exactly in IEEE arithmetic, so the spec's operand
/// order does not matter).
#[derive(Debug, Clone)]
pub struct Binary {
    /// Add or multiply.
    pub combine: Combine,
    /// The second operand's value.
    pub other: usize,
    /// `Some((hw, c))` when `other` is one value per channel (`[c]` per
    /// sample) broadcast over `hw` positions of `input`.
    pub gate: Option<(usize, usize)>,
}

impl Binary {
    /// `y = x ∘ other` over `n` samples.
    pub fn forward(&self, n: usize, x: &[f32], other: &[f32], y: &mut [f32]) {
        match self.gate {
            None => match self.combine {
                Combine::Add => {
                    for ((o, &a), &b) in y.iter_mut().zip(x).zip(other) {
                        *o = a + b;
                    }
                }
                Combine::Mul => {
                    for ((o, &a), &b) in y.iter_mut().zip(x).zip(other) {
                        *o = a * b;
                    }
                }
            },
            Some((hw, c)) => {
                for s in 0..n {
                    let g = &other[s * c..(s + 1) * c];
                    let rows = (
                        x[s * hw * c..(s + 1) * hw * c].chunks_exact(c),
                        y[s * hw * c..(s + 1) * hw * c].chunks_exact_mut(c),
                    );
                    for (xr, yr) in rows.0.zip(rows.1) {
                        match self.combine {
                            Combine::Add => {
                                for ((o, &a), &b) in yr.iter_mut().zip(xr).zip(g) {
                                    *o = a + b;
                                }
                            }
                            Combine::Mul => {
                                for ((o, &a), &b) in yr.iter_mut().zip(xr).zip(g) {
                                    *o = a * b;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The gradient of the full-shape operand: `dy` (add) or `dy · other`
    /// (mul), written or added to `dx`.
    pub fn backward_input(
        &self,
        n: usize,
        other: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        accumulate: bool,
    ) {
        let dx = &mut dx[..dy.len()];
        match (self.combine, self.gate) {
            (Combine::Add, _) => put(dx, accumulate, dy.iter().copied()),
            (Combine::Mul, None) => put(dx, accumulate, dy.iter().zip(other).map(|(g, b)| g * b)),
            (Combine::Mul, Some((hw, c))) => {
                for s in 0..n {
                    let g = &other[s * c..(s + 1) * c];
                    let block = s * hw * c..(s + 1) * hw * c;
                    let rows = (
                        dy[block.clone()].chunks_exact(c),
                        dx[block].chunks_exact_mut(c),
                    );
                    for (gr, dr) in rows.0.zip(rows.1) {
                        put(dr, accumulate, gr.iter().zip(g).map(|(d, b)| d * b));
                    }
                }
            }
        }
    }

    /// The gradient of `other`: `dy` (add) or `dy · x` (mul), summed over
    /// the positions a gate is broadcast to. `sum` is scratch for a gate's
    /// per-channel sums.
    pub fn backward_other(
        &self,
        n: usize,
        x: &[f32],
        dy: &[f32],
        d_other: &mut [f32],
        accumulate: bool,
        sum: &mut Vec<f32>,
    ) {
        match (self.combine, self.gate) {
            (Combine::Add, None) => put(&mut d_other[..dy.len()], accumulate, dy.iter().copied()),
            (Combine::Mul, None) => put(
                &mut d_other[..dy.len()],
                accumulate,
                dy.iter().zip(x).map(|(g, a)| g * a),
            ),
            (combine, Some((hw, c))) => {
                sum.clear();
                sum.resize(c, 0.0);
                for s in 0..n {
                    sum.fill(0.0);
                    let block = s * hw * c..(s + 1) * hw * c;
                    let rows = (dy[block.clone()].chunks_exact(c), x[block].chunks_exact(c));
                    for (gr, xr) in rows.0.zip(rows.1) {
                        match combine {
                            Combine::Add => {
                                for (t, &g) in sum.iter_mut().zip(gr) {
                                    *t += g;
                                }
                            }
                            Combine::Mul => {
                                for ((t, &g), &a) in sum.iter_mut().zip(gr).zip(xr) {
                                    *t += g * a;
                                }
                            }
                        }
                    }
                    put(
                        &mut d_other[s * c..(s + 1) * c],
                        accumulate,
                        sum.iter().copied(),
                    );
                }
            }
        }
    }
}

/// Concatenation along channels of values with `hw` positions each (1 for
/// flat vectors).
#[derive(Debug, Clone)]
pub struct Concat {
    /// Positions per sample.
    pub hw: usize,
    /// `(value, channels)` of each part, in order.
    pub parts: Vec<(usize, usize)>,
}

impl Concat {
    /// All parts' channels.
    pub fn channels(&self) -> usize {
        self.parts.iter().map(|&(_, c)| c).sum()
    }

    /// `y = [parts…]` over `n` samples, reading each part from `acts`.
    pub fn forward(&self, n: usize, acts: &[Vec<f32>], y: &mut [f32]) {
        let total = self.channels();
        let mut at = 0;
        for &(v, c) in &self.parts {
            let x = &acts[v];
            for row in 0..n * self.hw {
                y[row * total + at..row * total + at + c]
                    .copy_from_slice(&x[row * c..(row + 1) * c]);
            }
            at += c;
        }
    }

    /// Part `i`'s gradient: its channels of `dy`, written or added to `dx`.
    pub fn backward_part(&self, n: usize, i: usize, dy: &[f32], dx: &mut [f32], accumulate: bool) {
        let total = self.channels();
        let at: usize = self.parts[..i].iter().map(|&(_, c)| c).sum();
        let c = self.parts[i].1;
        for row in 0..n * self.hw {
            let src = &dy[row * total + at..row * total + at + c];
            put(
                &mut dx[row * c..(row + 1) * c],
                accumulate,
                src.iter().copied(),
            );
        }
    }
}

/// Constant padding of a `[h, w, c]` map by `[top, bottom, left, right]`.
#[derive(Debug, Clone)]
pub struct Pad {
    /// `[top, bottom, left, right]`.
    pub pad: [usize; 4],
    /// The value of the added border.
    pub value: f32,
    /// Input `(h, w, c)`.
    pub input: (usize, usize, usize),
}

impl Pad {
    /// Output `(h, w)`.
    pub fn output(&self) -> (usize, usize) {
        let (h, w, _) = self.input;
        let [t, b, l, r] = self.pad;
        (h + t + b, w + l + r)
    }

    /// `y = pad(x)` over `n` samples.
    pub fn forward(&self, n: usize, x: &[f32], y: &mut [f32]) {
        let (h, w, c) = self.input;
        let (oh, ow) = self.output();
        let [t, _, l, _] = self.pad;
        y[..n * oh * ow * c].fill(self.value);
        for s in 0..n {
            for i in 0..h {
                let src = (s * h + i) * w * c;
                let dst = ((s * oh + i + t) * ow + l) * c;
                y[dst..dst + w * c].copy_from_slice(&x[src..src + w * c]);
            }
        }
    }

    /// `dx = crop(dy)`: the border is a constant.
    pub fn backward(&self, n: usize, dy: &[f32], dx: &mut [f32]) {
        let (h, w, c) = self.input;
        let (oh, ow) = self.output();
        let [t, _, l, _] = self.pad;
        for s in 0..n {
            for i in 0..h {
                let dst = (s * h + i) * w * c;
                let src = ((s * oh + i + t) * ow + l) * c;
                dx[dst..dst + w * c].copy_from_slice(&dy[src..src + w * c]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_broadcasts_over_positions_and_sums_back() {
        // 1 sample, 2 positions × 2 channels; gate [2, 3].
        let x = [1.0, 2.0, 3.0, 4.0];
        let gate = [2.0, 3.0];
        let mul = Binary {
            combine: Combine::Mul,
            other: 0,
            gate: Some((2, 2)),
        };
        let mut y = [0f32; 4];
        mul.forward(1, &x, &gate, &mut y);
        assert_eq!(y, [2.0, 6.0, 6.0, 12.0]);
        let dy = [1.0, 1.0, 0.5, 2.0];
        let mut dx = [0f32; 4];
        mul.backward_input(1, &gate, &dy, &mut dx, false);
        assert_eq!(dx, [2.0, 3.0, 1.0, 6.0]);
        let mut dg = [10f32, 10.0];
        mul.backward_other(1, &x, &dy, &mut dg, true, &mut Vec::new());
        // 10 + (1·1 + 0.5·3), 10 + (1·2 + 2·4).
        assert_eq!(dg, [12.5, 20.0]);
        let add = Binary {
            combine: Combine::Add,
            ..mul
        };
        add.backward_other(1, &x, &dy, &mut dg, false, &mut Vec::new());
        assert_eq!(dg, [1.5, 3.0]);
    }

    #[test]
    fn concat_interleaves_channels_and_splits_back() {
        // 2 positions; parts of 1 and 2 channels.
        let acts = vec![vec![1.0, 2.0], vec![10.0, 11.0, 20.0, 21.0]];
        let cat = Concat {
            hw: 2,
            parts: vec![(0, 1), (1, 2)],
        };
        let mut y = [0f32; 6];
        cat.forward(1, &acts, &mut y);
        assert_eq!(y, [1.0, 10.0, 11.0, 2.0, 20.0, 21.0]);
        let mut d = [0f32; 4];
        cat.backward_part(1, 1, &y, &mut d, false);
        assert_eq!(d, [10.0, 11.0, 20.0, 21.0]);
        let mut d0 = [1f32; 2];
        cat.backward_part(1, 0, &y, &mut d0, true);
        assert_eq!(d0, [2.0, 3.0]);
    }

    #[test]
    fn pad_borders_and_crops_back() {
        // 1×2 map, 1 channel, padded [1, 0, 0, 1] with 9.
        let pad = Pad {
            pad: [1, 0, 0, 1],
            value: 9.0,
            input: (1, 2, 1),
        };
        let mut y = [0f32; 6];
        pad.forward(1, &[1.0, 2.0], &mut y);
        assert_eq!(y, [9.0, 9.0, 9.0, 1.0, 2.0, 9.0]);
        let mut dx = [0f32; 2];
        pad.backward(1, &[0.0, 0.0, 0.0, 4.0, 5.0, 0.0], &mut dx);
        assert_eq!(dx, [4.0, 5.0]);
    }
}
