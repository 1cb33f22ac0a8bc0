//! Custom candle ops whose gradients follow PyTorch where candle 0.11 does not:
//! max pooling routes the whole gradient to the first maximum of each window
//! (candle splits it among ties, and only supports kernel = stride), average
//! pooling supports any stride, padding and `count_include_pad`, and
//! cross-entropy is fused so its gradient is `softmax − one_hot` computed the
//! way PyTorch computes it (candle's composite log-softmax loses precision on
//! confident inputs). CPU and f32 only: the forward passes read contiguous
//! storage, callers make inputs contiguous first.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use super::layers::ReluBackward;
use super::spec::pooled_len;

type CResult<T> = candle_core::Result<T>;

/// A pooling window: PyTorch's `kernel_size`, `stride`, `padding`, `dilation`, `ceil_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2d {
    /// Window size `(h, w)`.
    pub kernel: (usize, usize),
    /// Step between windows `(h, w)`.
    pub stride: (usize, usize),
    /// Implicit padding on each side `(h, w)`.
    pub padding: (usize, usize),
    /// Spacing between window elements `(h, w)`.
    pub dilation: (usize, usize),
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
}

impl Pool2d {
    fn out_hw(&self, h: usize, w: usize) -> CResult<(usize, usize)> {
        let oh = pooled_len(
            h,
            self.kernel.0,
            self.stride.0,
            self.padding.0,
            self.dilation.0,
            self.ceil_mode,
        );
        let ow = pooled_len(
            w,
            self.kernel.1,
            self.stride.1,
            self.padding.1,
            self.dilation.1,
            self.ceil_mode,
        );
        match (oh, ow) {
            (Some(oh), Some(ow)) => Ok((oh, ow)),
            _ => candle_core::bail!(
                "pooling window {:?} larger than the input {h}×{w}",
                self.kernel
            ),
        }
    }

    /// Input rows (or columns) covered by output position `o` along one axis:
    /// `(first, step, count)` of the in-range window elements.
    pub(crate) fn span(
        o: usize,
        stride: usize,
        pad: usize,
        kernel: usize,
        dil: usize,
        len: usize,
    ) -> (usize, usize, usize) {
        let start = (o * stride) as isize - pad as isize;
        let mut first = None;
        let mut count = 0;
        for k in 0..kernel {
            let i = start + (k * dil) as isize;
            if i >= 0 && (i as usize) < len {
                if first.is_none() {
                    first = Some(i as usize);
                }
                count += 1;
            }
        }
        (first.unwrap_or(0), dil, count)
    }
}

fn f32_input<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> CResult<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("{what}: only f32 tensors are supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

/// Index (within one `h × w` plane) and value of the first maximum of a window,
/// with PyTorch's CPU rule: start at the first in-range element with −∞ and
/// take any strictly larger value or a NaN.
fn window_argmax(
    p: &Pool2d,
    plane: &[f32],
    h: usize,
    w: usize,
    oy: usize,
    ox: usize,
) -> (usize, f32) {
    let (y0, dy, ny) = Pool2d::span(oy, p.stride.0, p.padding.0, p.kernel.0, p.dilation.0, h);
    let (x0, dx, nx) = Pool2d::span(ox, p.stride.1, p.padding.1, p.kernel.1, p.dilation.1, w);
    let mut best_idx = y0 * w + x0;
    let mut best = f32::NEG_INFINITY;
    for iy in 0..ny {
        let row = (y0 + iy * dy) * w;
        for ix in 0..nx {
            let idx = row + x0 + ix * dx;
            let v = plane[idx];
            if v > best || v.is_nan() {
                best = v;
                best_idx = idx;
            }
        }
    }
    (best_idx, best)
}

/// ReLU whose backward pass follows a [`ReluBackward`] rule instead of the
/// gradient (Captum's `ModifiedReluGradientAttribution` hooks: guided
/// backpropagation clamps the ReLU's own input gradient at 0,
/// deconvolution the output gradient).
#[derive(Debug, Clone, Copy)]
pub struct ModifiedReluOp(pub ReluBackward);

impl CustomOp1 for ModifiedReluOp {
    fn name(&self) -> &'static str {
        "xai-modified-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = f32_input(s, l, "relu")?;
        let out: Vec<f32> = x.iter().map(|v| v.max(0.0)).collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> CResult<Option<Tensor>> {
        let positive = grad_res.relu()?;
        Ok(Some(match self.0 {
            ReluBackward::Guided => positive.mul(&arg.gt(0f64)?.to_dtype(grad_res.dtype())?)?,
            ReluBackward::Deconvolution => positive,
        }))
    }
}

/// Max pooling with PyTorch's forward and argmax-routed backward.
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2dOp(pub Pool2d);

impl CustomOp1 for MaxPool2dOp {
    fn name(&self) -> &'static str {
        "xai-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = f32_input(s, l, "max_pool2d")?;
        let (n, c, h, w) = l.shape().dims4()?;
        let (oh, ow) = self.0.out_hw(h, w)?;
        let mut out = vec![0f32; n * c * oh * ow];
        for (plane_idx, out_plane) in out.chunks_mut(oh * ow).enumerate() {
            let plane = &x[plane_idx * h * w..(plane_idx + 1) * h * w];
            for oy in 0..oh {
                for ox in 0..ow {
                    out_plane[oy * ow + ox] = window_argmax(&self.0, plane, h, w, oy, ox).1;
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> CResult<Option<Tensor>> {
        let grad = arg
            .contiguous()?
            .apply_op2_no_bwd(&grad_res.contiguous()?, &MaxPool2dBackward(self.0))?;
        Ok(Some(grad))
    }
}

/// The gradient of [`MaxPool2dOp`]: `(input, grad_output) → grad_input`.
struct MaxPool2dBackward(Pool2d);

impl CustomOp2 for MaxPool2dBackward {
    fn name(&self) -> &'static str {
        "xai-max-pool2d-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = f32_input(s1, l1, "max_pool2d backward")?;
        let g = f32_input(s2, l2, "max_pool2d backward")?;
        let (n, c, h, w) = l1.shape().dims4()?;
        let (oh, ow) = self.0.out_hw(h, w)?;
        let mut grad = vec![0f32; n * c * h * w];
        for (plane_idx, grad_plane) in grad.chunks_mut(h * w).enumerate() {
            let plane = &x[plane_idx * h * w..(plane_idx + 1) * h * w];
            let g_plane = &g[plane_idx * oh * ow..(plane_idx + 1) * oh * ow];
            for oy in 0..oh {
                for ox in 0..ow {
                    let (idx, _) = window_argmax(&self.0, plane, h, w, oy, ox);
                    grad_plane[idx] += g_plane[oy * ow + ox];
                }
            }
        }
        Ok((CpuStorage::F32(grad), l1.shape().clone()))
    }
}

/// Average pooling with PyTorch's divisor rules (`count_include_pad`, windows
/// clipped to the padded input) and a backward for any stride.
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2dOp {
    /// The window.
    pub pool: Pool2d,
    /// Count padded zeros in the divisor (PyTorch's default).
    pub count_include_pad: bool,
}

impl AvgPool2dOp {
    /// `(y0, ny, x0, nx, divisor)` for one output position; `ny` or `nx` is 0
    /// for a window that lies entirely in the padding.
    pub(crate) fn window(
        &self,
        h: usize,
        w: usize,
        oy: usize,
        ox: usize,
    ) -> (usize, usize, usize, usize, f32) {
        let p = &self.pool;
        let axis = |o: usize, s: usize, pad: usize, k: usize, len: usize| {
            let start = (o * s) as isize - pad as isize;
            let end_padded = (start + k as isize).min((len + pad) as isize);
            let padded = (end_padded - start) as usize;
            let lo = start.max(0) as usize;
            let hi = end_padded.min(len as isize).max(0) as usize;
            (lo, hi.saturating_sub(lo), padded)
        };
        let (y0, ny, py) = axis(oy, p.stride.0, p.padding.0, p.kernel.0, h);
        let (x0, nx, px) = axis(ox, p.stride.1, p.padding.1, p.kernel.1, w);
        let divisor = if self.count_include_pad {
            py * px
        } else {
            ny * nx
        };
        (y0, ny, x0, nx, divisor as f32)
    }
}

impl CustomOp1 for AvgPool2dOp {
    fn name(&self) -> &'static str {
        "xai-avg-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = f32_input(s, l, "avg_pool2d")?;
        let (n, c, h, w) = l.shape().dims4()?;
        let (oh, ow) = self.pool.out_hw(h, w)?;
        let mut out = vec![0f32; n * c * oh * ow];
        for (plane_idx, out_plane) in out.chunks_mut(oh * ow).enumerate() {
            let plane = &x[plane_idx * h * w..(plane_idx + 1) * h * w];
            for oy in 0..oh {
                for ox in 0..ow {
                    let (y0, ny, x0, nx, divisor) = self.window(h, w, oy, ox);
                    if ny == 0 || nx == 0 {
                        continue;
                    }
                    let mut sum = 0f32;
                    for y in y0..y0 + ny {
                        for v in &plane[y * w + x0..y * w + x0 + nx] {
                            sum += v;
                        }
                    }
                    out_plane[oy * ow + ox] = sum / divisor;
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> CResult<Option<Tensor>> {
        let grad = arg
            .contiguous()?
            .apply_op2_no_bwd(&grad_res.contiguous()?, &AvgPool2dBackward(*self))?;
        Ok(Some(grad))
    }
}

/// The gradient of [`AvgPool2dOp`]: `(input, grad_output) → grad_input`.
struct AvgPool2dBackward(AvgPool2dOp);

impl CustomOp2 for AvgPool2dBackward {
    fn name(&self) -> &'static str {
        "xai-avg-pool2d-backward"
    }

    fn cpu_fwd(
        &self,
        _s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let g = f32_input(s2, l2, "avg_pool2d backward")?;
        let (n, c, h, w) = l1.shape().dims4()?;
        let (oh, ow) = self.0.pool.out_hw(h, w)?;
        let mut grad = vec![0f32; n * c * h * w];
        for (plane_idx, grad_plane) in grad.chunks_mut(h * w).enumerate() {
            let g_plane = &g[plane_idx * oh * ow..(plane_idx + 1) * oh * ow];
            for oy in 0..oh {
                for ox in 0..ow {
                    let (y0, ny, x0, nx, divisor) = self.0.window(h, w, oy, ox);
                    let share = g_plane[oy * ow + ox] / divisor;
                    for y in y0..y0 + ny {
                        for v in &mut grad_plane[y * w + x0..y * w + x0 + nx] {
                            *v += share;
                        }
                    }
                }
            }
        }
        Ok((CpuStorage::F32(grad), l1.shape().clone()))
    }
}

/// Per-sample cross-entropy of logits `[N, K]` against fixed labels, fused so
/// that its gradient is `softmax − one_hot` (scaled by the incoming gradient).
/// Like PyTorch, the softmax is `exp(log_softmax(z))`: the same rounding as
/// `F.cross_entropy`'s backward, so sign-based attacks see PyTorch's signs.
#[derive(Debug, Clone)]
pub struct CrossEntropyOp {
    /// One label per row.
    pub labels: Vec<u32>,
}

/// Log-softmax of one row, in PyTorch's order of operations:
/// `(z − max) − ln Σ exp(z − max)`. Folding `max + ln Σ` first, as a plain
/// log-sum-exp would, rounds away the tiny `1 − p` of a confident input and
/// turns the true class's gradient into exactly 0.
pub fn log_softmax_row(row: &[f32], out: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&z| (z - max).exp()).sum();
    let log_sum = sum.ln();
    for (o, &z) in out.iter_mut().zip(row) {
        *o = (z - max) - log_sum;
    }
}

impl CrossEntropyOp {
    fn check(&self, n: usize, k: usize) -> CResult<()> {
        if self.labels.len() != n {
            candle_core::bail!("cross-entropy: {} labels for {n} rows", self.labels.len());
        }
        if let Some(&bad) = self.labels.iter().find(|&&y| y as usize >= k) {
            candle_core::bail!("cross-entropy: label {bad} outside the {k} classes");
        }
        Ok(())
    }
}

impl CustomOp1 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "xai-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let z = f32_input(s, l, "cross-entropy")?;
        let (n, k) = l.shape().dims2()?;
        self.check(n, k)?;
        let mut log_p = vec![0f32; k];
        let loss: Vec<f32> = z
            .chunks(k)
            .zip(&self.labels)
            .map(|(row, &y)| {
                log_softmax_row(row, &mut log_p);
                -log_p[y as usize]
            })
            .collect();
        Ok((CpuStorage::F32(loss), Shape::from(n)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> CResult<Option<Tensor>> {
        let grad = arg.contiguous()?.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &CrossEntropyBackward(self.labels.clone()),
        )?;
        Ok(Some(grad))
    }
}

/// `(logits, grad_loss) → (softmax − one_hot) · grad_loss`.
struct CrossEntropyBackward(Vec<u32>);

impl CustomOp2 for CrossEntropyBackward {
    fn name(&self) -> &'static str {
        "xai-cross-entropy-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let z = f32_input(s1, l1, "cross-entropy backward")?;
        let g = f32_input(s2, l2, "cross-entropy backward")?;
        let (n, k) = l1.shape().dims2()?;
        let mut grad = vec![0f32; n * k];
        for (i, (row, out)) in z.chunks(k).zip(grad.chunks_mut(k)).enumerate() {
            log_softmax_row(row, out);
            for o in out.iter_mut() {
                *o = o.exp() * g[i];
            }
            out[self.0[i] as usize] -= g[i];
        }
        Ok((CpuStorage::F32(grad), l1.shape().clone()))
    }
}

/// `x` max-pooled with PyTorch's semantics (see [`MaxPool2dOp`]).
pub fn max_pool2d(x: &Tensor, pool: Pool2d) -> CResult<Tensor> {
    x.contiguous()?.apply_op1(MaxPool2dOp(pool))
}

/// `x` average-pooled with PyTorch's semantics (see [`AvgPool2dOp`]).
pub fn avg_pool2d(x: &Tensor, pool: Pool2d, count_include_pad: bool) -> CResult<Tensor> {
    x.contiguous()?.apply_op1(AvgPool2dOp {
        pool,
        count_include_pad,
    })
}

/// Per-sample cross-entropy `[N]` of `logits [N, K]` against `labels`.
pub fn cross_entropy(logits: &Tensor, labels: &[u32]) -> CResult<Tensor> {
    logits.contiguous()?.apply_op1(CrossEntropyOp {
        labels: labels.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn pool(k: usize, s: usize, p: usize) -> Pool2d {
        Pool2d {
            kernel: (k, k),
            stride: (s, s),
            padding: (p, p),
            dilation: (1, 1),
            ceil_mode: false,
        }
    }

    #[test]
    fn max_pool_ties_route_to_first_maximum() {
        // All-zero input: every window ties; PyTorch sends each window's gradient
        // to its top-left element (see the torch check in tests/fixtures/README.md).
        let x = Var::from_tensor(
            &Tensor::zeros((1, 1, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap(),
        )
        .unwrap();
        let y = max_pool2d(x.as_tensor(), pool(2, 2, 0)).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        #[rustfmt::skip]
        let expected = [1., 0., 1., 0.,
                        0., 0., 0., 0.,
                        1., 0., 1., 0.,
                        0., 0., 0., 0.];
        assert_eq!(g, expected);
    }

    #[test]
    fn overlapping_max_pool_accumulates_and_pads_with_minus_infinity() {
        // k3 s2 p1 on a 1×1×3×3 ramp: windows overlap on the centre; by hand the
        // outputs are maxima of the clipped windows.
        let data: Vec<f32> = vec![-1., -2., -3., -4., -5., -6., -7., -8., -9.];
        let x =
            Var::from_tensor(&Tensor::from_vec(data, (1, 1, 3, 3), &Device::Cpu).unwrap()).unwrap();
        let y = max_pool2d(x.as_tensor(), pool(3, 2, 1)).unwrap();
        let out: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(out, vec![-1., -2., -4., -5.]);
        let g: Vec<f32> = y
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(g, vec![1., 1., 0., 1., 1., 0., 0., 0., 0.]);
    }

    #[test]
    fn avg_pool_divisors_follow_count_include_pad() {
        let x = Tensor::ones((1, 1, 2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        // k2 s1 p1 on ones: corner windows hold 1 real element of 4.
        let inc: Vec<f32> = avg_pool2d(&x, pool(2, 1, 1), true)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(inc, vec![0.25, 0.5, 0.25, 0.5, 1.0, 0.5, 0.25, 0.5, 0.25]);
        let exc: Vec<f32> = avg_pool2d(&x, pool(2, 1, 1), false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(exc, vec![1.0; 9]);
    }

    #[test]
    fn cross_entropy_matches_closed_form_and_gradient() {
        let z =
            Var::from_tensor(&Tensor::new(&[[1f32, 2., 3.], [0., 0., 0.]], &Device::Cpu).unwrap())
                .unwrap();
        let loss = cross_entropy(z.as_tensor(), &[2, 0]).unwrap();
        let l: Vec<f32> = loss.to_vec1().unwrap();
        let lse = (1f32.exp() + 2f32.exp() + 3f32.exp()).ln();
        assert!((l[0] - (lse - 3.0)).abs() < 1e-6);
        assert!((l[1] - 3f32.ln()).abs() < 1e-6);
        let g: Vec<Vec<f32>> = loss
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
            .get(&z)
            .unwrap()
            .to_vec2()
            .unwrap();
        let p0: Vec<f32> = [1f32, 2., 3.].iter().map(|v| (v - lse).exp()).collect();
        assert!((g[0][0] - p0[0]).abs() < 1e-6 && (g[0][2] - (p0[2] - 1.0)).abs() < 1e-6);
        assert!((g[1][0] - (1.0 / 3.0 - 1.0)).abs() < 1e-6 && (g[1][1] - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn cross_entropy_rejects_out_of_range_labels() {
        let z = Tensor::zeros((1, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(cross_entropy(&z, &[3]).is_err());
        assert!(cross_entropy(&z, &[0, 1]).is_err());
    }
}
