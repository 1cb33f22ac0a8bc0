//! The fully connected layer, `y = x Wᵀ + b`, as one GEMM each way.

use super::gemm::{matmul, MatRef};

/// A compiled linear layer.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]`, for the backward product.
    weight: Vec<f32>,
    /// `[in, out]`, for the forward product (unpacked by the GEMM kernel).
    weight_t: Vec<f32>,
    bias: Option<Vec<f32>>,
    /// Input width.
    pub fin: usize,
    /// Output width.
    pub fout: usize,
}

impl Linear {
    /// From PyTorch's `[out, in]` weight.
    pub fn new(weight: Vec<f32>, bias: Option<Vec<f32>>, fin: usize, fout: usize) -> Self {
        let mut weight_t = vec![0f32; weight.len()];
        for o in 0..fout {
            for j in 0..fin {
                weight_t[j * fout + o] = weight[o * fin + j];
            }
        }
        Linear {
            weight,
            weight_t,
            bias,
            fin,
            fout,
        }
    }

    /// See [`super::conv::Conv::fold_affine`] (a following `batch_norm1d`).
    pub fn fold_affine(&mut self, scale: &[f32], shift: &[f32]) {
        for (o, &a) in scale.iter().enumerate() {
            for v in &mut self.weight[o * self.fin..(o + 1) * self.fin] {
                *v *= a;
            }
        }
        for row in self.weight_t.chunks_exact_mut(self.fout) {
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

    /// `y [n, out] = x [n, in] Wᵀ + b`.
    pub fn forward(&self, n: usize, x: &[f32], y: &mut [f32]) {
        if let Some(b) = &self.bias {
            for row in y[..n * self.fout].chunks_exact_mut(self.fout) {
                row.copy_from_slice(b);
            }
        }
        matmul(
            y,
            MatRef::row_major(x, n, self.fin),
            MatRef::row_major(&self.weight_t, self.fin, self.fout),
            self.bias.is_some(),
        );
    }

    /// `dx = dy W` (`dx +=` when `accumulate`).
    pub fn backward(&self, n: usize, dy: &[f32], dx: &mut [f32], accumulate: bool) {
        matmul(
            dx,
            MatRef::row_major(dy, n, self.fout),
            MatRef::row_major(&self.weight, self.fout, self.fin),
            accumulate,
        );
    }
}
