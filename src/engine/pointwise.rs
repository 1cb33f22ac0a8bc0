//! Element-wise ops and their input gradients: activations (hard ones with
//! PyTorch's derivatives at their kinks), per-channel affine maps (input
//! normalization, eval-mode batch norm, `channel_affine`, scalar `affine`),
//! softmax over a sample's values and the channel-last → PyTorch-order
//! flatten. Each backward uses the forward's
//! input or output, whichever the derivative is cheapest from.

use candle_core::cpu::erf::erf_f64;

/// An element-wise activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`; derivative 0 at 0 (PyTorch's).
    Relu,
    /// `x` for `x > 0`, else `slope · x`.
    LeakyRelu(f32),
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `x · sigmoid(x)`.
    Silu,
    /// PyTorch's exact GELU, `x · Φ(x) = ½x(1 + erf(x/√2))`.
    GeluErf,
    /// PyTorch's `approximate="tanh"` GELU, `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
    GeluTanh,
    /// `min(max(x, lo), hi)`; derivative 1 strictly inside `(lo, hi)`, 0 at
    /// and beyond the bounds (PyTorch's `hardtanh`, ReLU6).
    Clip(f32, f32),
    /// `clamp(alpha·x + beta, 0, 1)`; derivative `alpha` where
    /// `0 < alpha·x + beta < 1` strictly.
    HardSigmoid(f32, f32),
    /// `x · relu6(x + 3) / 6`; derivative 0 below −3, `(2x + 3) / 6` on
    /// `[−3, 3]`, 1 above (PyTorch's).
    HardSwish,
}

/// hard-swish's factor `h(x)` with `x · h(x)` its value (`x / 6 + 1/2` on
/// `[−3, 3]`, computed as the reference does), and whether `x` lies in
/// `[−3, 3]`.
#[inline]
fn hard_swish_factor(x: f32) -> (f32, bool) {
    if x > 3.0 {
        (1.0, false)
    } else if x >= -3.0 {
        (x * (1.0 / 6.0) + 0.5, true)
    } else {
        (0.0, false)
    }
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

/// GELU and its derivative in f64, rounded once (the reference computes the
/// forward in f32; both stay within a few ulps of the exact value).
fn gelu_erf(x: f32) -> (f32, f32) {
    let x = x as f64;
    let cdf = 0.5 * (1.0 + erf_f64(x * std::f64::consts::FRAC_1_SQRT_2));
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    ((x * cdf) as f32, (cdf + x * pdf) as f32)
}

fn gelu_tanh(x: f32) -> (f32, f32) {
    let x = x as f64;
    let inner = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    let t = inner.tanh();
    let d_inner = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
    (
        (0.5 * x * (1.0 + t)) as f32,
        (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner) as f32,
    )
}

impl Activation {
    /// `y = f(x)`.
    pub fn forward(self, x: &[f32], y: &mut [f32]) {
        let y = &mut y[..x.len()];
        match self {
            Activation::Relu => {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = if v > 0.0 { v } else { 0.0 };
                }
            }
            Activation::LeakyRelu(s) => {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = if v > 0.0 { v } else { v * s };
                }
            }
            Activation::Tanh => {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = v.tanh();
                }
            }
            Activation::Sigmoid => {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = 1.0 / (1.0 + (-v).exp());
                }
            }
            Activation::Silu => {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = v / (1.0 + (-v).exp());
                }
            }
            Activation::GeluErf => {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = gelu_erf(v).0;
                }
            }
            Activation::GeluTanh => {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = gelu_tanh(v).0;
                }
            }
            Activation::Clip(lo, hi) => {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = if v <= lo {
                        lo
                    } else if v >= hi {
                        hi
                    } else {
                        v
                    };
                }
            }
            Activation::HardSigmoid(alpha, beta) => {
                for (o, &v) in y.iter_mut().zip(x) {
                    let z = v * alpha + beta;
                    *o = z.clamp(0.0, 1.0);
                }
            }
            Activation::HardSwish => {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = v * hard_swish_factor(v).0;
                }
            }
        }
    }

    /// `dx = f'(x) · dy`, given the forward's input `x` and output `y`.
    pub fn backward(self, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32]) {
        let dx = &mut dx[..x.len()];
        match self {
            Activation::Relu => {
                for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                    *d = if v > 0.0 { g } else { 0.0 };
                }
            }
            Activation::LeakyRelu(s) => {
                for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                    *d = if v > 0.0 { g } else { g * s };
                }
            }
            Activation::Tanh => {
                for ((d, &t), &g) in dx.iter_mut().zip(y).zip(dy) {
                    *d = g * (1.0 - t * t);
                }
            }
            Activation::Sigmoid => {
                for ((d, &s), &g) in dx.iter_mut().zip(y).zip(dy) {
                    *d = g * s * (1.0 - s);
                }
            }
            Activation::Silu => {
                for (((d, &v), &o), &g) in dx.iter_mut().zip(x).zip(y).zip(dy) {
                    let s = 1.0 / (1.0 + (-v).exp());
                    *d = g * (s + o * (1.0 - s));
                }
            }
            Activation::GeluErf => {
                for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                    *d = g * gelu_erf(v).1;
                }
            }
            Activation::GeluTanh => {
                for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                    *d = g * gelu_tanh(v).1;
                }
            }
            Activation::Clip(lo, hi) => {
                for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                    *d = if v > lo && v < hi { g } else { 0.0 };
                }
            }
            Activation::HardSigmoid(alpha, beta) => {
                for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                    let z = v * alpha + beta;
                    *d = if z > 0.0 && z < 1.0 { g * alpha } else { 0.0 };
                }
            }
            Activation::HardSwish => {
                // d(x · h(x)) = h(x) + x · h'(x), h' = 1/6 on [−3, 3].
                for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
                    let (h, inside) = hard_swish_factor(v);
                    *d = if inside {
                        g * h + g * v * (1.0 / 6.0)
                    } else {
                        g * h
                    };
                }
            }
        }
    }
}

/// A per-channel map on channel-last data: `(x − sub) / div` for input
/// normalization (in the reference's order of operations), `x · mul + add`
/// for batch norm.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelMap {
    /// `(x − mean) / std`.
    Normalize {
        /// Per channel.
        mean: Vec<f32>,
        /// Per channel.
        std: Vec<f32>,
    },
    /// `x · scale + shift`.
    Affine {
        /// Per channel.
        scale: Vec<f32>,
        /// Per channel.
        shift: Vec<f32>,
    },
}

impl ChannelMap {
    fn channels(&self) -> usize {
        match self {
            ChannelMap::Normalize { mean, .. } => mean.len(),
            ChannelMap::Affine { scale, .. } => scale.len(),
        }
    }

    /// `y = map(x)`.
    pub fn forward(&self, x: &[f32], y: &mut [f32]) {
        let c = self.channels();
        match self {
            ChannelMap::Normalize { mean, std } => {
                for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                    for (((o, &v), &m), &s) in yr.iter_mut().zip(xr).zip(mean).zip(std) {
                        *o = (v - m) / s;
                    }
                }
            }
            ChannelMap::Affine { scale, shift } => {
                for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                    for (((o, &v), &a), &b) in yr.iter_mut().zip(xr).zip(scale).zip(shift) {
                        *o = v * a + b;
                    }
                }
            }
        }
    }

    /// `dx = map'(x) · dy`.
    pub fn backward(&self, dy: &[f32], dx: &mut [f32]) {
        let c = self.channels();
        for (dr, gr) in dx.chunks_exact_mut(c).zip(dy.chunks_exact(c)) {
            match self {
                ChannelMap::Normalize { std, .. } => {
                    for ((d, &g), &s) in dr.iter_mut().zip(gr).zip(std) {
                        *d = g / s;
                    }
                }
                ChannelMap::Affine { scale, .. } => {
                    for ((d, &g), &a) in dr.iter_mut().zip(gr).zip(scale) {
                        *d = g * a;
                    }
                }
            }
        }
    }
}

/// Channel-last `[n, hw, c]` → PyTorch's flatten order `[n, c·hw]`.
pub fn to_channel_first(n: usize, hw: usize, c: usize, x: &[f32], y: &mut [f32]) {
    for s in 0..n {
        let (xs, ys) = (
            &x[s * hw * c..(s + 1) * hw * c],
            &mut y[s * hw * c..(s + 1) * hw * c],
        );
        for p in 0..hw {
            for ch in 0..c {
                ys[ch * hw + p] = xs[p * c + ch];
            }
        }
    }
}

/// The inverse of [`to_channel_first`].
pub fn to_channel_last(n: usize, hw: usize, c: usize, x: &[f32], y: &mut [f32]) {
    for s in 0..n {
        let (xs, ys) = (
            &x[s * hw * c..(s + 1) * hw * c],
            &mut y[s * hw * c..(s + 1) * hw * c],
        );
        for p in 0..hw {
            for ch in 0..c {
                ys[p * c + ch] = xs[ch * hw + p];
            }
        }
    }
}

/// The bias of a layer with a per-channel affine map `y · scale + shift`
/// folded into it: `bias · scale + shift`, computed in f64.
pub fn folded_bias(bias: Option<&[f32]>, scale: &[f32], shift: &[f32]) -> Vec<f32> {
    (0..scale.len())
        .map(|o| {
            let b = bias.map_or(0.0, |b| b[o] as f64);
            (b * scale[o] as f64 + shift[o] as f64) as f32
        })
        .collect()
}

/// Softmax over each sample's `k` values: `y = e^(x − max) / Σ e^(x − max)`
/// (the sum in f64).
pub fn softmax_forward(k: usize, x: &[f32], y: &mut [f32]) {
    for (yr, xr) in y.chunks_exact_mut(k).zip(x.chunks_exact(k)) {
        let top = xr.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0f64;
        for (o, &v) in yr.iter_mut().zip(xr) {
            *o = (v - top).exp();
            sum += *o as f64;
        }
        let sum = sum as f32;
        for o in yr.iter_mut() {
            *o /= sum;
        }
    }
}

/// Softmax's input gradient from its output: `dx = y ⊙ (dy − ⟨dy, y⟩)`.
pub fn softmax_backward(k: usize, y: &[f32], dy: &[f32], dx: &mut [f32]) {
    let rows = dx.chunks_exact_mut(k).zip(y.chunks_exact(k));
    for ((dr, yr), gr) in rows.zip(dy.chunks_exact(k)) {
        let dot: f64 = yr.iter().zip(gr).map(|(&p, &g)| p as f64 * g as f64).sum();
        let dot = dot as f32;
        for ((d, &p), &g) in dr.iter_mut().zip(yr).zip(gr) {
            *d = p * (g - dot);
        }
    }
}

/// `dst = src` or `dst += src`.
pub fn write(src: &[f32], dst: &mut [f32], accumulate: bool) {
    if accumulate {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d += s;
        }
    } else {
        dst[..src.len()].copy_from_slice(src);
    }
}

/// `g = g · [y > 0]`: a fused ReLU's gradient, from its output (`y > 0`
/// exactly where the input was, and the derivative at 0 is PyTorch's 0).
pub fn relu_mask(y: &[f32], g: &mut [f32]) {
    // A select, not a conditional store: it vectorises.
    for (d, &v) in g.iter_mut().zip(y) {
        *d = if v > 0.0 { *d } else { 0.0 };
    }
}

/// `y = max(y, 0)` in place (a NaN becomes 0, as in [`Activation::Relu`]).
pub fn relu_in_place(y: &mut [f32]) {
    for v in y.iter_mut() {
        *v = if *v > 0.0 { *v } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_its_closed_forms() {
        // Φ(1) = 0.841344746…, tanh form at 1: 0.5·(1 + tanh(0.7978845608·1.044715)).
        let mut y = [0f32; 3];
        Activation::GeluErf.forward(&[1.0, 0.0, -1.0], &mut y);
        assert!((y[0] - 0.841_344_7).abs() < 1e-6 && y[1] == 0.0, "{y:?}");
        assert!((y[2] + 0.158_655_3).abs() < 1e-6, "{y:?}");
        Activation::GeluTanh.forward(&[1.0], &mut y[..1]);
        let want = 0.5 * (1.0 + (0.797_884_56f64 * 1.044_715).tanh());
        assert!((y[0] as f64 - want).abs() < 1e-6, "{} vs {want}", y[0]);
    }

    #[test]
    fn activation_gradients_match_central_differences() {
        let xs = [-3.5f32, -2.0, -0.7, -0.1, 0.3, 1.1, 2.5, 4.0];
        for act in [
            Activation::LeakyRelu(0.1),
            Activation::Relu,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Silu,
            Activation::GeluErf,
            Activation::GeluTanh,
            Activation::Clip(-1.0, 1.5),
            Activation::HardSigmoid(0.3, 0.4),
            Activation::HardSigmoid(1.0 / 6.0, 0.5),
            Activation::HardSwish,
        ] {
            let mut y = vec![0f32; xs.len()];
            act.forward(&xs, &mut y);
            let mut dx = vec![0f32; xs.len()];
            act.backward(&xs, &y, &[1.0; 8], &mut dx);
            for (i, &x) in xs.iter().enumerate() {
                let h = 1e-3f64;
                let f = |v: f64| -> f64 {
                    let mut o = [0f32];
                    act.forward(&[v as f32], &mut o);
                    o[0] as f64
                };
                let fd = (f(x as f64 + h) - f(x as f64 - h)) / (2.0 * h);
                assert!(
                    (dx[i] as f64 - fd).abs() < 2e-3,
                    "{act:?} at {x}: {} vs {fd}",
                    dx[i]
                );
            }
        }
    }

    #[test]
    fn hard_activations_have_pytorchs_derivatives_at_their_kinks() {
        let grad = |act: Activation, x: f32| {
            let mut y = [0f32];
            act.forward(&[x], &mut y);
            let mut d = [9f32];
            act.backward(&[x], &y, &[1.0], &mut d);
            (y[0], d[0])
        };
        assert_eq!(grad(Activation::Clip(0.0, 6.0), 0.0), (0.0, 0.0));
        assert_eq!(grad(Activation::Clip(0.0, 6.0), 6.0), (6.0, 0.0));
        assert_eq!(grad(Activation::Clip(0.0, 6.0), 7.0), (6.0, 0.0));
        assert_eq!(grad(Activation::HardSigmoid(0.5, 0.5), -1.0), (0.0, 0.0));
        assert_eq!(grad(Activation::HardSigmoid(0.5, 0.5), 1.0), (1.0, 0.0));
        // hard-swish: (2x + 3) / 6 on the closed [−3, 3].
        assert_eq!(grad(Activation::HardSwish, -3.0).1, -0.5);
        assert_eq!(grad(Activation::HardSwish, 3.0), (3.0, 1.5));
        assert_eq!(grad(Activation::HardSwish, -3.5), (-0.0, 0.0));
    }

    #[test]
    fn softmax_sums_to_one_and_its_gradient_matches_differences() {
        let x = [0.3f32, -1.2, 2.0, 0.5, 10.0, 10.0];
        let mut y = [0f32; 6];
        softmax_forward(3, &x, &mut y);
        assert!((y[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(y[4], y[5]);
        let dy = [0.7f32, -0.2, 1.3, 1.0, 0.0, -1.0];
        let mut dx = [0f32; 6];
        softmax_backward(3, &y, &dy, &mut dx);
        for i in 0..6 {
            let f = |h: f32| -> f64 {
                let mut xp = x;
                xp[i] += h;
                let mut yp = [0f32; 6];
                softmax_forward(3, &xp, &mut yp);
                yp.iter().zip(&dy).map(|(a, b)| *a as f64 * *b as f64).sum()
            };
            let fd = (f(1e-2) - f(-1e-2)) / 2e-2;
            assert!((dx[i] as f64 - fd).abs() < 1e-3, "{i}: {} vs {fd}", dx[i]);
        }
    }

    #[test]
    fn relu_has_zero_derivative_at_zero() {
        let mut dx = [9f32; 2];
        Activation::Relu.backward(&[0.0, -0.0], &[0.0, 0.0], &[1.0, 1.0], &mut dx);
        assert_eq!(dx, [0.0, 0.0]);
    }

    #[test]
    fn normalization_and_affine_maps() {
        let n = ChannelMap::Normalize {
            mean: vec![1.0, 2.0],
            std: vec![2.0, 4.0],
        };
        let mut y = [0f32; 4];
        n.forward(&[3.0, 2.0, 1.0, 10.0], &mut y);
        assert_eq!(y, [1.0, 0.0, 0.0, 2.0]);
        let mut dx = [0f32; 4];
        n.backward(&[1.0, 1.0, 2.0, 2.0], &mut dx);
        assert_eq!(dx, [0.5, 0.25, 1.0, 0.5]);
        let a = ChannelMap::Affine {
            scale: vec![3.0],
            shift: vec![-1.0],
        };
        let mut y = [0f32; 2];
        a.forward(&[1.0, 2.0], &mut y);
        assert_eq!(y, [2.0, 5.0]);
    }

    #[test]
    fn flatten_order_is_pytorchs_and_round_trips() {
        // 2 positions × 3 channels, channel-last.
        let x = [0.0, 1.0, 2.0, 10.0, 11.0, 12.0];
        let mut y = [0f32; 6];
        to_channel_first(1, 2, 3, &x, &mut y);
        assert_eq!(y, [0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
        let mut back = [0f32; 6];
        to_channel_last(1, 2, 3, &y, &mut back);
        assert_eq!(back, x);
    }
}
