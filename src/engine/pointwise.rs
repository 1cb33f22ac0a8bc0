//! Element-wise ops and their input gradients: activations, per-channel
//! affine maps (input normalization, eval-mode batch norm) and the
//! channel-last → PyTorch-order flatten. Each backward uses the forward's
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

/// `y = a + b`, the residual sum.
pub fn add(a: &[f32], b: &[f32], y: &mut [f32]) {
    for ((o, &u), &v) in y.iter_mut().zip(a).zip(b) {
        *o = u + v;
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
        let xs = [-2.0f32, -0.7, -0.1, 0.3, 1.1, 2.5];
        for act in [
            Activation::LeakyRelu(0.1),
            Activation::Relu,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Silu,
            Activation::GeluErf,
            Activation::GeluTanh,
        ] {
            let mut y = vec![0f32; xs.len()];
            act.forward(&xs, &mut y);
            let mut dx = vec![0f32; xs.len()];
            act.backward(&xs, &y, &[1.0; 6], &mut dx);
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
