//! Grouped and depthwise 2-D convolutions (`groups > 1`) on channel-last
//! activations, computed directly: each output pixel sums its in-range taps,
//! the channel loop innermost so it vectorises. A depthwise convolution
//! (one input and one output channel per group, MobileNet's) multiplies
//! whole channel rows; other groupings loop over their group's channels.

/// A compiled grouped convolution.
#[derive(Debug, Clone)]
pub struct Grouped {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Channel groups.
    pub groups: usize,
    /// Kernel `(h, w)`.
    pub kernel: (usize, usize),
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding `(h, w)`.
    pub padding: (usize, usize),
    /// Dilation (both axes).
    pub dilation: usize,
    /// Input `(h, w)`.
    pub input: (usize, usize),
    /// Output `(h, w)`.
    pub output: (usize, usize),
    /// `[kh·kw, groups, cin/groups, cout/groups]`: per tap and input
    /// channel, its group's output channels contiguous.
    weight: Vec<f32>,
    /// `[cout]`.
    bias: Option<Vec<f32>>,
}

impl Grouped {
    /// Builds from PyTorch's `[cout, cin/groups, kh, kw]` weight.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        weight: &[f32],
        bias: Option<Vec<f32>>,
        (cout, cig, kh, kw): (usize, usize, usize, usize),
        groups: usize,
        stride: usize,
        padding: (usize, usize),
        dilation: usize,
        input: (usize, usize),
    ) -> Self {
        let output = super::conv::output_size(input, (kh, kw), stride, padding, dilation);
        let cog = cout / groups;
        let mut w = vec![0f32; weight.len()];
        for g in 0..groups {
            for co in 0..cog {
                for ci in 0..cig {
                    for t in 0..kh * kw {
                        let src = (((g * cog + co) * cig + ci) * kh * kw) + t;
                        w[((t * groups + g) * cig + ci) * cog + co] = weight[src];
                    }
                }
            }
        }
        Grouped {
            cin: cig * groups,
            cout,
            groups,
            kernel: (kh, kw),
            stride,
            padding,
            dilation,
            input,
            output,
            weight: w,
            bias,
        }
    }

    /// See [`super::conv::Conv::fold_affine`].
    pub fn fold_affine(&mut self, scale: &[f32], shift: &[f32]) {
        let cog = self.cout / self.groups;
        for (i, v) in self.weight.iter_mut().enumerate() {
            // Index = ((t·groups + g)·cig + ci)·cog + co.
            let co = i % cog;
            let g = (i / (cog * (self.cin / self.groups))) % self.groups;
            *v *= scale[g * cog + co];
        }
        self.bias = Some(super::pointwise::folded_bias(
            self.bias.as_deref(),
            scale,
            shift,
        ));
    }

    /// Calls `f(sample, output pixel, tap, input pixel)` for every in-range
    /// tap, output pixels in order.
    fn for_each_tap(&self, n: usize, mut f: impl FnMut(usize, usize, usize)) {
        let (h, w) = self.input;
        let (oh, ow) = self.output;
        let (kh, kw) = self.kernel;
        let (st, dil) = (self.stride as isize, self.dilation as isize);
        for s in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = (s * oh + oy) * ow + ox;
                    for ky in 0..kh {
                        let iy = oy as isize * st + ky as isize * dil - self.padding.0 as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..kw {
                            let ix = ox as isize * st + kx as isize * dil - self.padding.1 as isize;
                            if ix < 0 || ix >= w as isize {
                                continue;
                            }
                            let i = (s * h + iy as usize) * w + ix as usize;
                            f(o, ky * kw + kx, i);
                        }
                    }
                }
            }
        }
    }

    /// `y [n, oh, ow, cout] = conv(x [n, h, w, cin])`.
    pub fn forward(&self, n: usize, x: &[f32], y: &mut [f32]) {
        let (cin, cout, groups) = (self.cin, self.cout, self.groups);
        let (cig, cog) = (cin / groups, cout / groups);
        let pixels = n * self.output.0 * self.output.1;
        match &self.bias {
            Some(b) => {
                for row in y[..pixels * cout].chunks_exact_mut(cout) {
                    row.copy_from_slice(b);
                }
            }
            None => y[..pixels * cout].fill(0.0),
        }
        self.for_each_tap(n, |o, t, i| {
            let out = &mut y[o * cout..(o + 1) * cout];
            let inp = &x[i * cin..(i + 1) * cin];
            let wt = &self.weight[t * cin * cog..(t + 1) * cin * cog];
            if cig == 1 && cog == 1 {
                for ((a, &v), &k) in out.iter_mut().zip(inp).zip(wt) {
                    *a += v * k;
                }
                return;
            }
            for g in 0..groups {
                let out = &mut out[g * cog..(g + 1) * cog];
                for ci in 0..cig {
                    let v = inp[g * cig + ci];
                    let k = &wt[(g * cig + ci) * cog..(g * cig + ci + 1) * cog];
                    for (a, &kv) in out.iter_mut().zip(k) {
                        *a += v * kv;
                    }
                }
            }
        });
    }

    /// `dx = ∂/∂x` given `dy` (`dx +=` when `accumulate`).
    pub fn backward(&self, n: usize, dy: &[f32], dx: &mut [f32], accumulate: bool) {
        let (cin, cout, groups) = (self.cin, self.cout, self.groups);
        let (cig, cog) = (cin / groups, cout / groups);
        if !accumulate {
            dx[..n * self.input.0 * self.input.1 * cin].fill(0.0);
        }
        self.for_each_tap(n, |o, t, i| {
            let g_out = &dy[o * cout..(o + 1) * cout];
            let d_in = &mut dx[i * cin..(i + 1) * cin];
            let wt = &self.weight[t * cin * cog..(t + 1) * cin * cog];
            if cig == 1 && cog == 1 {
                for ((d, &g), &k) in d_in.iter_mut().zip(g_out).zip(wt) {
                    *d += g * k;
                }
                return;
            }
            for g in 0..groups {
                let gs = &g_out[g * cog..(g + 1) * cog];
                for ci in 0..cig {
                    let k = &wt[(g * cig + ci) * cog..(g * cig + ci + 1) * cog];
                    let s: f32 = gs.iter().zip(k).map(|(a, b)| a * b).sum();
                    d_in[g * cig + ci] += s;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition in NCHW, f64.
    #[allow(clippy::too_many_arguments)]
    fn direct(
        x: &[f32],
        w: &[f32],
        (cin, h, wd): (usize, usize, usize),
        (cout, kh, kw): (usize, usize, usize),
        groups: usize,
        stride: usize,
        pad: (usize, usize),
        (oh, ow): (usize, usize),
    ) -> Vec<f64> {
        let (cig, cog) = (cin / groups, cout / groups);
        let mut y = vec![0f64; cout * oh * ow];
        for co in 0..cout {
            let g = co / cog;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = 0f64;
                    for ci in 0..cig {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride + ky) as isize - pad.0 as isize;
                                let ix = (ox * stride + kx) as isize - pad.1 as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    let xi = ((g * cig + ci) * h + iy as usize) * wd + ix as usize;
                                    s += x[xi] as f64
                                        * w[((co * cig + ci) * kh + ky) * kw + kx] as f64;
                                }
                            }
                        }
                    }
                    y[(co * oh + oy) * ow + ox] = s;
                }
            }
        }
        y
    }

    fn nchw_to_last(x: &[f32], c: usize, hw: usize) -> Vec<f32> {
        let mut y = vec![0f32; x.len()];
        for ch in 0..c {
            for p in 0..hw {
                y[p * c + ch] = x[ch * hw + p];
            }
        }
        y
    }

    #[test]
    fn depthwise_and_grouped_match_the_definition_forward_and_adjoint() {
        // (cin, cout, groups): depthwise, depthwise ×2 multiplier, 2 groups.
        for (cin, cout, groups) in [(4, 4, 4), (3, 6, 3), (4, 6, 2)] {
            let (h, wd, kh, kw, stride, pad) = (7, 6, 3, 2, 2, (1, 1));
            let cig = cin / groups;
            let x: Vec<f32> = (0..cin * h * wd)
                .map(|i| ((i * 31 % 17) as f32 - 8.0) / 7.0)
                .collect();
            let w: Vec<f32> = (0..cout * cig * kh * kw)
                .map(|i| ((i * 13 % 11) as f32 - 5.0) / 9.0)
                .collect();
            let conv = Grouped::new(
                &w,
                None,
                (cout, cig, kh, kw),
                groups,
                stride,
                pad,
                1,
                (h, wd),
            );
            let (oh, ow) = conv.output;
            assert_eq!((oh, ow), (4, 4), "PyTorch's output size");
            let want = direct(
                &x,
                &w,
                (cin, h, wd),
                (cout, kh, kw),
                groups,
                stride,
                pad,
                (oh, ow),
            );
            let xl = nchw_to_last(&x, cin, h * wd);
            let mut y = vec![0f32; oh * ow * cout];
            conv.forward(1, &xl, &mut y);
            for co in 0..cout {
                for p in 0..oh * ow {
                    let got = y[p * cout + co] as f64;
                    assert!((got - want[co * oh * ow + p]).abs() < 1e-5, "{got}");
                }
            }
            // Adjoint: <conv(x), g> = <x, convᵀ(g)> for every basis x.
            let g: Vec<f32> = (0..cout * oh * ow)
                .map(|i| ((i * 7 % 5) as f32 - 2.0) / 3.0)
                .collect();
            let gl = nchw_to_last(&g, cout, oh * ow);
            let mut dx = vec![1f32; xl.len()];
            conv.backward(1, &gl, &mut dx, true);
            for i in 0..x.len() {
                let mut e = vec![0f32; x.len()];
                e[i] = 1.0;
                let col = direct(
                    &e,
                    &w,
                    (cin, h, wd),
                    (cout, kh, kw),
                    groups,
                    stride,
                    pad,
                    (oh, ow),
                );
                let want: f64 = col.iter().zip(&g).map(|(a, &b)| a * b as f64).sum();
                let (ci, p) = (i / (h * wd), i % (h * wd));
                let got = dx[p * cin + ci] as f64 - 1.0;
                assert!((got - want).abs() < 1e-5, "input {i}: {got} vs {want}");
            }
        }
    }
}
