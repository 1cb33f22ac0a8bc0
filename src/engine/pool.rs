//! Max pooling with PyTorch's argmax routing, average pooling (PyTorch's
//! divisor rules, adaptive windows) and global average pooling, on
//! channel-last activations. The max pool's forward pass records each
//! output's source index so the backward pass is a scatter, not a second
//! search.

use crate::model::ops::{AvgPool2dOp, Pool2d};

/// A compiled max pool.
#[derive(Debug, Clone)]
pub struct MaxPool {
    /// The window, as the reference op has it.
    pub pool: Pool2d,
    /// Channels.
    pub c: usize,
    /// Input `(h, w)`.
    pub input: (usize, usize),
    /// Output `(h, w)`.
    pub output: (usize, usize),
}

impl MaxPool {
    /// `y = maxpool(x)` for `n` samples; `arg` receives, per output, the
    /// index in `x` it came from (PyTorch's rule: the first maximum in scan
    /// order, starting from −∞, a NaN always winning).
    pub fn forward(&self, n: usize, x: &[f32], y: &mut [f32], arg: &mut Vec<u32>) {
        let (h, w) = self.input;
        let (oh, ow) = self.output;
        let c = self.c;
        let p = &self.pool;
        arg.resize(n * oh * ow * c, 0);
        let ys: Vec<_> = (0..oh)
            .map(|o| Pool2d::span(o, p.stride.0, p.padding.0, p.kernel.0, p.dilation.0, h))
            .collect();
        let xs: Vec<_> = (0..ow)
            .map(|o| Pool2d::span(o, p.stride.1, p.padding.1, p.kernel.1, p.dilation.1, w))
            .collect();
        for s in 0..n {
            for (oy, &(y0, dy, ny)) in ys.iter().enumerate() {
                for (ox, &(x0, dx, nx)) in xs.iter().enumerate() {
                    let o = ((s * oh + oy) * ow + ox) * c;
                    let best = &mut y[o..o + c];
                    let best_at = &mut arg[o..o + c];
                    // Starting from the first element is PyTorch's rule
                    // (start at −∞ with the first index, take v > best or NaN).
                    let first = ((s * h + y0) * w + x0) * c;
                    best.copy_from_slice(&x[first..first + c]);
                    for (ch, a) in best_at.iter_mut().enumerate() {
                        *a = (first + ch) as u32;
                    }
                    for iy in 0..ny {
                        for ix in 0..nx {
                            if iy == 0 && ix == 0 {
                                continue;
                            }
                            let i = ((s * h + y0 + iy * dy) * w + x0 + ix * dx) * c;
                            let window = &x[i..i + c];
                            let base = i as u32;
                            // Bit-mask blends instead of branches or selects:
                            // LLVM vectorises the channel loop only in this form.
                            for ch in 0..c {
                                let (v, b) = (window[ch], best[ch]);
                                let mask = (((v > b) | v.is_nan()) as u32).wrapping_neg();
                                let (vb, bb) = (v.to_bits(), b.to_bits());
                                best[ch] = f32::from_bits(bb ^ ((bb ^ vb) & mask));
                                let (a, idx) = (best_at[ch], base + ch as u32);
                                best_at[ch] = a ^ ((a ^ idx) & mask);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Routes each output gradient to its recorded source.
    pub fn backward(&self, n: usize, arg: &[u32], dy: &[f32], dx: &mut [f32]) {
        dx[..n * self.input.0 * self.input.1 * self.c].fill(0.0);
        let outs = n * self.output.0 * self.output.1 * self.c;
        for (&a, &g) in arg[..outs].iter().zip(&dy[..outs]) {
            dx[a as usize] += g;
        }
    }
}

/// A compiled average pool: every output averages a rectangle of inputs by
/// a fixed divisor, which covers `avg_pool2d` (any stride, padding,
/// `ceil_mode`, `count_include_pad`) and `adaptive_avg_pool2d`.
#[derive(Debug, Clone)]
pub struct AvgPool {
    /// Channels.
    pub c: usize,
    /// Input `(h, w)`.
    pub input: (usize, usize),
    /// Output `(h, w)`.
    pub output: (usize, usize),
    /// Per output position, row-major: `(y0, ny, x0, nx, divisor)`.
    windows: Vec<(usize, usize, usize, usize, f32)>,
}

impl AvgPool {
    /// PyTorch's `avg_pool2d`, with the reference op's window and divisor
    /// rules (`output` from the shared output-size rule).
    pub fn new(op: AvgPool2dOp, c: usize, input: (usize, usize), output: (usize, usize)) -> Self {
        let mut windows = Vec::with_capacity(output.0 * output.1);
        for oy in 0..output.0 {
            for ox in 0..output.1 {
                windows.push(op.window(input.0, input.1, oy, ox));
            }
        }
        AvgPool {
            c,
            input,
            output,
            windows,
        }
    }

    /// PyTorch's `adaptive_avg_pool2d`: output cell `i` averages input rows
    /// `⌊i·H/oh⌋ .. ⌈(i+1)·H/oh⌉`, likewise for columns.
    pub fn adaptive(c: usize, input: (usize, usize), output: (usize, usize)) -> Self {
        let span = |i: usize, len: usize, out: usize| {
            let (a, b) = (i * len / out, ((i + 1) * len).div_ceil(out));
            (a, b - a)
        };
        let mut windows = Vec::with_capacity(output.0 * output.1);
        for oy in 0..output.0 {
            for ox in 0..output.1 {
                let (y0, ny) = span(oy, input.0, output.0);
                let (x0, nx) = span(ox, input.1, output.1);
                windows.push((y0, ny, x0, nx, (ny * nx) as f32));
            }
        }
        AvgPool {
            c,
            input,
            output,
            windows,
        }
    }

    /// `y = avgpool(x)` for `n` samples; a window wholly in the padding gives 0.
    pub fn forward(&self, n: usize, x: &[f32], y: &mut [f32]) {
        let (h, w) = self.input;
        let c = self.c;
        let per_out = self.output.0 * self.output.1 * c;
        for s in 0..n {
            for (o, &(y0, ny, x0, nx, div)) in self.windows.iter().enumerate() {
                let out = &mut y[s * per_out + o * c..s * per_out + (o + 1) * c];
                out.fill(0.0);
                // Sum rows then columns, as the reference does per plane.
                for iy in y0..y0 + ny {
                    for ix in x0..x0 + nx {
                        let at = ((s * h + iy) * w + ix) * c;
                        for (a, &v) in out.iter_mut().zip(&x[at..at + c]) {
                            *a += v;
                        }
                    }
                }
                for a in out.iter_mut() {
                    *a /= div;
                }
            }
        }
    }

    /// Spreads each output gradient over its window, divided by its divisor.
    pub fn backward(&self, n: usize, dy: &[f32], dx: &mut [f32]) {
        let (h, w) = self.input;
        let c = self.c;
        let per_out = self.output.0 * self.output.1 * c;
        dx[..n * h * w * c].fill(0.0);
        for s in 0..n {
            for (o, &(y0, ny, x0, nx, div)) in self.windows.iter().enumerate() {
                let g = &dy[s * per_out + o * c..s * per_out + (o + 1) * c];
                for iy in y0..y0 + ny {
                    for ix in x0..x0 + nx {
                        let at = ((s * h + iy) * w + ix) * c;
                        for (d, &v) in dx[at..at + c].iter_mut().zip(g) {
                            *d += v / div;
                        }
                    }
                }
            }
        }
    }
}

/// Mean over height and width: `[n, h·w, c] → [n, c]`.
pub fn global_avg_forward(n: usize, hw: usize, c: usize, x: &[f32], y: &mut [f32]) {
    for s in 0..n {
        let out = &mut y[s * c..(s + 1) * c];
        out.fill(0.0);
        for p in 0..hw {
            for (o, v) in out
                .iter_mut()
                .zip(&x[(s * hw + p) * c..(s * hw + p + 1) * c])
            {
                *o += v;
            }
        }
        for o in out.iter_mut() {
            *o /= hw as f32;
        }
    }
}

/// The gradient of [`global_avg_forward`]: each position gets `dy / (h·w)`.
pub fn global_avg_backward(n: usize, hw: usize, c: usize, dy: &[f32], dx: &mut [f32]) {
    for s in 0..n {
        let g = &dy[s * c..(s + 1) * c];
        for p in 0..hw {
            for (d, v) in dx[(s * hw + p) * c..(s * hw + p + 1) * c].iter_mut().zip(g) {
                *d = v / hw as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(k: usize, s: usize, p: usize, d: usize) -> Pool2d {
        Pool2d {
            kernel: (k, k),
            stride: (s, s),
            padding: (p, p),
            dilation: (d, d),
            ceil_mode: false,
        }
    }

    #[test]
    fn ties_route_to_the_first_maximum_and_padding_is_skipped() {
        // One channel 4×4, 2×2 windows, stride 2: window 0 is all 1s (tie).
        let x = vec![
            1.0, 1.0, 0.0, 5.0, //
            1.0, 1.0, 5.0, 0.0, //
            -3.0, -2.0, 0.0, 0.0, //
            -4.0, -1.0, 0.0, 0.0,
        ];
        let mp = MaxPool {
            pool: pool(2, 2, 0, 1),
            c: 1,
            input: (4, 4),
            output: (2, 2),
        };
        let mut y = vec![0f32; 4];
        let mut arg = Vec::new();
        mp.forward(1, &x, &mut y, &mut arg);
        assert_eq!(y, vec![1.0, 5.0, -1.0, 0.0]);
        assert_eq!(arg, vec![0, 3, 13, 10]);
        let mut dx = vec![9f32; 16];
        mp.backward(1, &arg, &[1.0, 2.0, 3.0, 4.0], &mut dx);
        let mut want = vec![0f32; 16];
        want[0] = 1.0;
        want[3] = 2.0;
        want[13] = 3.0;
        want[10] = 4.0;
        assert_eq!(dx, want);

        // Padding 1, kernel 3, stride 2 over negative values: padding never wins.
        let x: Vec<f32> = (0..9).map(|i| -(i as f32) - 1.0).collect();
        let mp = MaxPool {
            pool: pool(3, 2, 1, 1),
            c: 1,
            input: (3, 3),
            output: (2, 2),
        };
        let mut y = vec![0f32; 4];
        mp.forward(1, &x, &mut y, &mut arg);
        assert_eq!(y, vec![-1.0, -2.0, -4.0, -5.0]);
    }

    #[test]
    fn channels_pool_independently() {
        // 2×2 input, 2 channels, one 2×2 window.
        let x = vec![1.0, 8.0, 4.0, 7.0, 3.0, 6.0, 2.0, 5.0];
        let mp = MaxPool {
            pool: pool(2, 2, 0, 1),
            c: 2,
            input: (2, 2),
            output: (1, 1),
        };
        let mut y = vec![0f32; 2];
        let mut arg = Vec::new();
        mp.forward(1, &x, &mut y, &mut arg);
        assert_eq!(y, vec![4.0, 8.0]);
        assert_eq!(arg, vec![2, 1]);
    }

    #[test]
    fn global_average_and_its_gradient() {
        let x = vec![1.0, 10.0, 3.0, 20.0]; // 2 positions × 2 channels
        let mut y = vec![0f32; 2];
        global_avg_forward(1, 2, 2, &x, &mut y);
        assert_eq!(y, vec![2.0, 15.0]);
        let mut dx = vec![0f32; 4];
        global_avg_backward(1, 2, 2, &[1.0, -4.0], &mut dx);
        assert_eq!(dx, vec![0.5, -2.0, 0.5, -2.0]);
    }
}
