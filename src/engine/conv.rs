//! 2-D convolution on channel-last (`[N, H, W, C]`) activations as im2col
//! plus one packed GEMM, and its input gradient as one GEMM plus col2im.
//! No weight gradient is ever computed: audits differentiate inputs only.

use super::gemm::{matmul, MatRef};
use super::winograd::Winograd;

/// PyTorch's convolution output size `(h, w)`.
pub fn output_size(
    input: (usize, usize),
    (kh, kw): (usize, usize),
    stride: usize,
    padding: (usize, usize),
    dilation: usize,
) -> (usize, usize) {
    let len = |len: usize, k: usize, p: usize| {
        (len + 2 * p).saturating_sub(dilation * (k - 1) + 1) / stride + 1
    };
    (len(input.0, kh, padding.0), len(input.1, kw, padding.1))
}

/// A compiled convolution (groups = 1).
#[derive(Debug, Clone)]
pub struct Conv {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
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
    /// `[cout, kh·kw·cin]`, window position major, channel minor (the order
    /// im2col writes a row in).
    pub weight: Vec<f32>,
    /// The same, transposed to `[kh·kw·cin, cout]`: with it the forward GEMM
    /// reads its weight operand in the layout the kernel wants, unpacked.
    pub weight_t: Vec<f32>,
    /// `[cout]`.
    pub bias: Option<Vec<f32>>,
    /// Winograd kernels for the forward pass and the input gradient, when
    /// [`Conv::use_winograd`] chose them.
    winograd: Option<Box<(Winograd, Winograd)>>,
}

impl Conv {
    /// Builds from PyTorch's `[cout, cin, kh, kw]` weight.
    pub fn new(
        weight: &[f32],
        bias: Option<Vec<f32>>,
        (cout, cin, kh, kw): (usize, usize, usize, usize),
        stride: usize,
        padding: (usize, usize),
        dilation: usize,
        input: (usize, usize),
    ) -> Self {
        let output = output_size(input, (kh, kw), stride, padding, dilation);
        let k = kh * kw * cin;
        let mut w = vec![0f32; cout * k];
        for co in 0..cout {
            for ci in 0..cin {
                for ky in 0..kh {
                    for kx in 0..kw {
                        w[co * k + (ky * kw + kx) * cin + ci] =
                            weight[((co * cin + ci) * kh + ky) * kw + kx];
                    }
                }
            }
        }
        let mut weight_t = vec![0f32; k * cout];
        for (kk, row) in weight_t.chunks_exact_mut(cout).enumerate() {
            for (co, v) in row.iter_mut().enumerate() {
                *v = w[co * k + kk];
            }
        }
        Conv {
            weight_t,
            cin,
            cout,
            kernel: (kh, kw),
            stride,
            padding,
            dilation,
            input,
            output,
            weight: w,
            bias,
            winograd: None,
        }
    }

    /// Whether Winograd F(2×2, 3×3) applies and pays: a 3×3, stride-1,
    /// dilation-1, padding-1 convolution with at least 16 channels each side
    /// (with fewer, its transforms cost more than the multiplies it saves).
    pub fn winograd_fits(&self) -> bool {
        self.kernel == (3, 3)
            && self.stride == 1
            && self.dilation == 1
            && self.padding == (1, 1)
            && self.cin >= 16
            && self.cout >= 16
    }

    /// Runs this convolution by Winograd F(2×2, 3×3) from now on, from the
    /// current (folded) weights; call after [`Conv::fold_affine`].
    pub fn use_winograd(&mut self) {
        let (cin, cout) = (self.cin, self.cout);
        let mut oihw = vec![0f32; cout * cin * 9];
        for co in 0..cout {
            for t in 0..9 {
                for ci in 0..cin {
                    oihw[(co * cin + ci) * 9 + t] = self.weight[co * 9 * cin + t * cin + ci];
                }
            }
        }
        self.winograd = Some(Box::new((
            Winograd::new(&oihw, cout, cin, self.input),
            Winograd::transposed(&oihw, cout, cin, self.input),
        )));
    }

    /// Whether this convolution runs by Winograd.
    pub fn is_winograd(&self) -> bool {
        self.winograd.is_some()
    }

    /// Folds a following per-channel affine map (eval-mode batch norm,
    /// `y · scale + shift`) into the weights and bias; the bias is computed
    /// in f64. Changes rounding only (well under the 1e-5 the tests allow).
    pub fn fold_affine(&mut self, scale: &[f32], shift: &[f32]) {
        let k = self.k();
        for (co, &a) in scale.iter().enumerate() {
            for v in &mut self.weight[co * k..(co + 1) * k] {
                *v *= a;
            }
        }
        for row in self.weight_t.chunks_exact_mut(self.cout) {
            for (v, &a) in row.iter_mut().zip(scale) {
                *v *= a;
            }
        }
        self.bias = Some(super::pointwise::folded_bias(
            self.bias.as_deref(),
            scale,
            shift,
        ));
    }

    /// Columns per im2col row.
    fn k(&self) -> usize {
        self.kernel.0 * self.kernel.1 * self.cin
    }

    /// A 1×1, stride-1, unpadded convolution reads its input as the columns.
    fn pointwise(&self) -> bool {
        self.kernel == (1, 1) && self.stride == 1 && self.padding == (0, 0)
    }

    /// Walks the im2col layout: for every output row of every sample and
    /// every kernel row `ky`, calls `f(col, Some((x_offset, kx_first,
    /// kx_count)))` for the columns whose taps fall inside the input (`col`
    /// is where tap `kx_first` goes, `x_offset` the input pixel it reads),
    /// or `f(col, None)` when the kernel row lies in the padding. Columns of
    /// taps outside the input along x are the caller's to zero.
    fn for_each_run(&self, n: usize, mut f: impl FnMut(usize, Option<(usize, usize, usize)>)) {
        let (h, w) = self.input;
        let (oh, ow) = self.output;
        let (kh, kw) = self.kernel;
        let (c, k) = (self.cin, self.k());
        let (st, dil) = (self.stride, self.dilation);
        // Per output column: the first in-range tap and how many are in range.
        let xs: Vec<(usize, usize, usize)> = (0..ow)
            .map(|ox| {
                let start = (ox * st) as isize - self.padding.1 as isize;
                let taps = (0..kw).filter(|&kx| {
                    let ix = start + (kx * dil) as isize;
                    ix >= 0 && (ix as usize) < w
                });
                let first = taps.clone().next().unwrap_or(0);
                let count = taps.count();
                let ix = (start + (first * dil) as isize).max(0) as usize;
                (first, count, ix)
            })
            .collect();
        for s in 0..n {
            for oy in 0..oh {
                for ky in 0..kh {
                    let iy = (oy * st + ky * dil) as isize - self.padding.0 as isize;
                    let inside = iy >= 0 && (iy as usize) < h;
                    for (ox, &(first, count, ix)) in xs.iter().enumerate() {
                        let row = ((s * oh + oy) * ow + ox) * k + ky * kw * c;
                        if inside && count > 0 {
                            let at = ((s * h + iy as usize) * w + ix) * c;
                            f(row + first * c, Some((at, first, count)));
                        } else {
                            f(row, None);
                        }
                    }
                }
            }
        }
    }

    /// `y [n, oh, ow, cout] = conv(x [n, h, w, cin])`; `cols` is scratch.
    pub fn forward(&self, n: usize, x: &[f32], y: &mut [f32], cols: &mut Vec<f32>) {
        if let Some(w) = &self.winograd {
            return w.0.forward(n, x, y, self.bias.as_deref(), false, cols);
        }
        if !self.tap_major() {
            return self.forward_gemm(n, x, y, cols);
        }
        let m = n * self.output.0 * self.output.1;
        let k = self.k();
        cols.clear();
        cols.resize(k * m, 0.0);
        self.for_each_tap_run(n, |col, at, len, step| {
            let dst = &mut cols[col..col + len];
            if step == 1 {
                dst.copy_from_slice(&x[at..at + len]);
            } else {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = x[at + j * step];
                }
            }
        });
        if let Some(b) = &self.bias {
            for row in y[..m * self.cout].chunks_exact_mut(self.cout) {
                row.copy_from_slice(b);
            }
        }
        matmul(
            y,
            MatRef::row_major(cols, k, m).t(),
            MatRef::row_major(&self.weight_t, k, self.cout),
            self.bias.is_some(),
        );
    }

    /// `dx = ∂/∂x` given `dy`, both channel-last (`dx +=` when
    /// `accumulate`: an input read by two branches); `cols` is scratch.
    pub fn backward(
        &self,
        n: usize,
        dy: &[f32],
        dx: &mut [f32],
        cols: &mut Vec<f32>,
        accumulate: bool,
    ) {
        if let Some(w) = &self.winograd {
            return w.1.forward(n, dy, dx, None, accumulate, cols);
        }
        if !self.tap_major() {
            return self.backward_gemm(n, dy, dx, cols, accumulate);
        }
        let m = n * self.output.0 * self.output.1;
        let k = self.k();
        cols.resize(k * m, 0.0);
        // dcolsᵀ [k, m] = W ᵀ [k, cout] · dyᵀ [cout, m].
        matmul(
            cols,
            MatRef::row_major(&self.weight_t, k, self.cout),
            MatRef::row_major(dy, m, self.cout).t(),
            false,
        );
        if !accumulate {
            dx[..n * self.input.0 * self.input.1].fill(0.0);
        }
        self.for_each_tap_run(n, |col, at, len, step| {
            let src = &cols[col..col + len];
            if step == 1 {
                for (d, g) in dx[at..at + len].iter_mut().zip(src) {
                    *d += g;
                }
            } else {
                for (j, g) in src.iter().enumerate() {
                    dx[at + j * step] += g;
                }
            }
        });
    }

    /// One input channel: im2col in tap-major order (`[kh·kw, n·oh·ow]`),
    /// where every (tap, output row) is one contiguous run of the input row —
    /// a few long copies instead of many three-float ones.
    fn tap_major(&self) -> bool {
        self.cin == 1 && !self.pointwise()
    }

    /// Visits, for each tap `kk`, sample and output row, the run of output
    /// columns whose tap lies inside the input:
    /// `f(first_col_index, x_offset, len, x_step)` with `first_col_index`
    /// into the tap-major columns and `x_step` the input stride between
    /// consecutive output columns.
    fn for_each_tap_run(&self, n: usize, mut f: impl FnMut(usize, usize, usize, usize)) {
        let (h, w) = self.input;
        let (oh, ow) = self.output;
        let (kh, kw) = self.kernel;
        let (st, dil) = (self.stride, self.dilation);
        let m = n * oh * ow;
        for ky in 0..kh {
            for kx in 0..kw {
                let kk = ky * kw + kx;
                // Output columns whose input column is in range.
                let off = (kx * dil) as isize - self.padding.1 as isize;
                let ox0 = (0..ow)
                    .find(|&ox| (ox * st) as isize + off >= 0)
                    .unwrap_or(ow);
                let ox1 = (0..ow)
                    .rev()
                    .find(|&ox| ((ox * st) as isize + off) < w as isize)
                    .map_or(0, |o| o + 1);
                for s in 0..n {
                    for oy in 0..oh {
                        let iy = (oy * st + ky * dil) as isize - self.padding.0 as isize;
                        if iy < 0 || iy as usize >= h || ox0 >= ox1 {
                            continue;
                        }
                        let col = kk * m + (s * oh + oy) * ow + ox0;
                        let ix = ((ox0 * st) as isize + off) as usize;
                        f(col, (s * h + iy as usize) * w + ix, ox1 - ox0, st);
                    }
                }
            }
        }
    }

    /// [`Conv::forward`] as im2col plus one GEMM.
    fn forward_gemm(&self, n: usize, x: &[f32], y: &mut [f32], cols: &mut Vec<f32>) {
        let m = n * self.output.0 * self.output.1;
        let k = self.k();
        let c = self.cin;
        let lhs: &[f32] = if self.pointwise() {
            x
        } else {
            cols.resize(m * k, 0.0);
            let (kw, dil) = (self.kernel.1, self.dilation);
            let row_len = kw * c;
            self.for_each_run(n, |col, run| match run {
                Some((at, first, count)) => {
                    let row_start = col - first * c;
                    let dst = &mut cols[row_start..row_start + row_len];
                    dst[..first * c].fill(0.0);
                    if dil == 1 {
                        // Contiguous taps: one copy of count·c floats.
                        dst[first * c..(first + count) * c].copy_from_slice(&x[at..at + count * c]);
                    } else {
                        for t in 0..count {
                            let (d, src) = ((first + t) * c, at + t * dil * c);
                            dst[d..d + c].copy_from_slice(&x[src..src + c]);
                        }
                    }
                    dst[(first + count) * c..].fill(0.0);
                }
                None => cols[col..col + row_len].fill(0.0),
            });
            cols
        };
        if let Some(b) = &self.bias {
            for row in y[..m * self.cout].chunks_exact_mut(self.cout) {
                row.copy_from_slice(b);
            }
        }
        matmul(
            y,
            MatRef::row_major(lhs, m, k),
            MatRef::row_major(&self.weight_t, k, self.cout),
            self.bias.is_some(),
        );
    }

    /// [`Conv::backward`] as one GEMM plus col2im.
    fn backward_gemm(
        &self,
        n: usize,
        dy: &[f32],
        dx: &mut [f32],
        cols: &mut Vec<f32>,
        accumulate: bool,
    ) {
        let m = n * self.output.0 * self.output.1;
        let k = self.k();
        let c = self.cin;
        let w = MatRef::row_major(&self.weight, self.cout, k);
        if self.pointwise() {
            matmul(dx, MatRef::row_major(dy, m, self.cout), w, accumulate);
            return;
        }
        cols.resize(m * k, 0.0);
        matmul(cols, MatRef::row_major(dy, m, self.cout), w, false);
        if !accumulate {
            dx[..n * self.input.0 * self.input.1 * c].fill(0.0);
        }
        let dil = self.dilation;
        self.for_each_run(n, |col, run| {
            if let Some((at, _, count)) = run {
                if dil == 1 {
                    let len = count * c;
                    for (d, g) in dx[at..at + len].iter_mut().zip(&cols[col..col + len]) {
                        *d += g;
                    }
                } else {
                    for t in 0..count {
                        let (src, dst) = (col + t * c, at + t * dil * c);
                        for (d, g) in dx[dst..dst + c].iter_mut().zip(&cols[src..src + c]) {
                            *d += g;
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition in NCHW, f64.
    #[allow(clippy::too_many_arguments)]
    fn direct(
        x: &[f32],
        w: &[f32],
        b: &[f32],
        (cin, h, wd): (usize, usize, usize),
        (cout, kh, kw): (usize, usize, usize),
        stride: usize,
        pad: (usize, usize),
        dil: usize,
        (oh, ow): (usize, usize),
    ) -> Vec<f64> {
        let mut y = vec![0f64; cout * oh * ow];
        for co in 0..cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = b[co] as f64;
                    for ci in 0..cin {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride + ky * dil) as isize - pad.0 as isize;
                                let ix = (ox * stride + kx * dil) as isize - pad.1 as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    s += x[(ci * h + iy as usize) * wd + ix as usize] as f64
                                        * w[((co * cin + ci) * kh + ky) * kw + kx] as f64;
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

    #[test]
    fn forward_and_input_gradient_match_the_definition() {
        // Asymmetric kernel and padding, strides and dilations, through both
        // the channel-minor (three channels) and the tap-major (one) im2col.
        for (cin, stride, dil, want) in [
            (3, 2, 2, (5, 4)),
            (1, 2, 2, (5, 4)),
            (1, 1, 1, (11, 9)),
            (3, 1, 1, (11, 9)),
        ] {
            check_against_definition(cin, stride, dil, want);
        }
    }

    fn check_against_definition(cin: usize, stride: usize, dil: usize, want_out: (usize, usize)) {
        let (h, wd, cout, kh, kw) = (9, 8, 4, 3, 2);
        let pad = (2, 1);
        let x: Vec<f32> = (0..cin * h * wd)
            .map(|i| ((i * 31 % 17) as f32 - 8.0) / 7.0)
            .collect();
        let w: Vec<f32> = (0..cout * cin * kh * kw)
            .map(|i| ((i * 13 % 11) as f32 - 5.0) / 9.0)
            .collect();
        let b = vec![0.5, -0.25, 0.0, 1.0];
        let conv = Conv::new(
            &w,
            Some(b.clone()),
            (cout, cin, kh, kw),
            stride,
            pad,
            dil,
            (h, wd),
        );
        let (oh, ow) = conv.output;
        assert_eq!((oh, ow), want_out, "PyTorch's output size");
        let want = direct(
            &x,
            &w,
            &b,
            (cin, h, wd),
            (cout, kh, kw),
            stride,
            pad,
            dil,
            (oh, ow),
        );
        // To channel-last.
        let mut xl = vec![0f32; x.len()];
        for ci in 0..cin {
            for p in 0..h * wd {
                xl[p * cin + ci] = x[ci * h * wd + p];
            }
        }
        let mut y = vec![0f32; oh * ow * cout];
        let mut cols = Vec::new();
        conv.forward(1, &xl, &mut y, &mut cols);
        for co in 0..cout {
            for p in 0..oh * ow {
                let got = y[p * cout + co] as f64;
                assert!((got - want[co * oh * ow + p]).abs() < 1e-5, "{got}");
            }
        }
        // Input gradient of Σ y·g by central differences of the f64 definition
        // (linear, so differences are exact up to rounding).
        let g: Vec<f64> = (0..cout * oh * ow)
            .map(|i| ((i * 7 % 5) as f64 - 2.0) / 3.0)
            .collect();
        let mut gl = vec![0f32; g.len()];
        for co in 0..cout {
            for p in 0..oh * ow {
                gl[p * cout + co] = g[co * oh * ow + p] as f32;
            }
        }
        let mut dx = vec![0f32; xl.len()];
        conv.backward(1, &gl, &mut dx, &mut cols, false);
        let dot = |x: &[f32]| -> f64 {
            direct(
                x,
                &w,
                &b,
                (cin, h, wd),
                (cout, kh, kw),
                stride,
                pad,
                dil,
                (oh, ow),
            )
            .iter()
            .zip(&g)
            .map(|(a, b)| a * b)
            .sum()
        };
        for i in 0..x.len() {
            let mut xp = x.clone();
            xp[i] += 0.5;
            let mut xm = x.clone();
            xm[i] -= 0.5;
            let fd = (dot(&xp) - dot(&xm)) / 1.0;
            let (ci, p) = (i / (h * wd), i % (h * wd));
            let got = dx[p * cin + ci] as f64;
            assert!((got - fd).abs() < 1e-4, "input {i}: {got} vs {fd}");
        }
    }

    #[test]
    fn pointwise_convolution_skips_im2col_and_still_matches() {
        let w = vec![1.0, 2.0, -1.0, 0.5, 0.0, 3.0]; // [3, 2, 1, 1]
        let conv = Conv::new(&w, None, (3, 2, 1, 1), 1, (0, 0), 1, (1, 2));
        let x = vec![1.0, 2.0, -1.0, 4.0]; // two pixels, two channels
        let mut y = vec![0f32; 6];
        let mut cols = Vec::new();
        conv.forward(1, &x, &mut y, &mut cols);
        assert_eq!(y, vec![5.0, 0.0, 6.0, 7.0, 3.0, 12.0]);
        let mut dx = vec![0f32; 4];
        conv.backward(
            1,
            &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
            &mut dx,
            &mut cols,
            false,
        );
        assert_eq!(dx, vec![1.0, 5.0, -1.0, 0.5]);
        assert!(cols.is_empty(), "a pointwise conv needs no columns");
    }
}
