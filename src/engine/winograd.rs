//! 3×3, stride-1, padding-1 convolution on channel-last data by Winograd
//! F(2×2, 3×3) (Lavin & Gray 2016): each 4×4 input tile, transformed
//! (`Bᵀ d B`), times the transformed weights (`G g Gᵀ`) element by element,
//! transformed back (`Aᵀ m A`), gives 2×2 outputs: 16 multiply-adds per
//! tile and channel pair where im2col spends 36. Over a block of tiles the
//! 16 element-wise products are 16 GEMMs `[tiles × cin] · [cin × cout]`.
//! The input gradient is the same kernel on the flipped, transposed weight
//! ([`Winograd::transposed`]); no weight gradient, as elsewhere in the engine.
//!
//! Bit-identity whatever the batch: the tiles of all samples are cut into
//! equal blocks, so a tile's block, its row there and the block's row count
//! depend on the batch. An output's arithmetic does not: the transforms are
//! element-wise, and every product stays on the `gemm` crate's general
//! kernel, whose value for one row depends on the inner dimension only.
//! That holds given three things the tests pin one by one: blocks have at
//! least 2 rows and products at least 2 columns (the crate takes vector
//! paths for 1, and for one column a kernel chosen by the row count), and
//! the inner dimension is cut here into pieces of at most [`MAX_INNER`]
//! (above it, the crate's depth blocking depends on the row count).

use super::gemm::{matmul, MatRef};

/// Widest inner dimension handed to one GEMM call.
const MAX_INNER: usize = 512;

/// Bytes of transformed inputs and products per block (at most 256 tiles).
/// Each block's 16 products read all of `U` (and the GEMM packs it when a
/// block has more than 32 rows), so blocks want many tiles; 4 MiB keeps the
/// scratch within a last-level cache and measured within a few percent of
/// the best block size at 64 to 512 channels (`winograd_speed_beside_im2col`).
const BLOCK_BYTES: usize = 4 << 20;

/// Floats between consecutive transformed matrices of a block beyond their
/// size: without it their starts are often a multiple of 4 KiB apart, so the
/// 16 streams a tile's transform writes or reads fall into the same L1 cache
/// set and evict one another (twice the transform time at 64 channels).
const SLAB_PAD: usize = 16;

/// Where a block's transformed inputs and products lie: 16 matrices of
/// `rows` rows each, `v_slab` (inputs) and `m_slab` (products) floats apart.
#[derive(Clone, Copy)]
struct Block {
    rows: usize,
    v_slab: usize,
    m_slab: usize,
}

/// The output, its bias and whether to add into it.
type Out<'a> = (&'a mut [f32], Option<&'a [f32]>, bool);

/// A 3×3, stride-1, dilation-1, padding-(1,1) convolution by Winograd
/// F(2×2, 3×3) (Lavin & Gray 2016).
#[derive(Debug, Clone)]
pub struct Winograd {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Input (= output) `(h, w)`.
    pub input: (usize, usize),
    /// Transformed weights `G g Gᵀ`, `[16][cin][cols]`.
    u: Vec<f32>,
    /// Columns of each product: `cout`, at least 2.
    cols: usize,
    /// Tiles per block.
    block: usize,
    /// `cin` zeros: the input outside the image.
    zeros: Vec<f32>,
}

impl Winograd {
    /// From PyTorch's `[cout, cin, 3, 3]` weight (f32). Output size = input size.
    pub fn new(weight: &[f32], cout: usize, cin: usize, input: (usize, usize)) -> Self {
        assert_eq!(weight.len(), cout * cin * 9, "Winograd: weight shape");
        let cols = cout.max(2);
        // G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]].
        const G: [[f64; 3]; 4] = [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ];
        let mut u = vec![0f32; 16 * cin * cols];
        for co in 0..cout {
            for ci in 0..cin {
                let g = &weight[(co * cin + ci) * 9..][..9];
                // G g Gᵀ in f64, rounded once.
                for i in 0..4 {
                    for j in 0..4 {
                        let mut s = 0f64;
                        for a in 0..3 {
                            for b in 0..3 {
                                s += G[i][a] * g[a * 3 + b] as f64 * G[j][b];
                            }
                        }
                        u[((i * 4 + j) * cin + ci) * cols + co] = s as f32;
                    }
                }
            }
        }
        let block = (BLOCK_BYTES / (16 * 4 * (cin + cols))).clamp(32, 256);
        Winograd {
            cin,
            cout,
            input,
            u,
            cols,
            block,
            zeros: vec![0f32; cin],
        }
    }

    /// The convolution whose output is this one's input gradient: weight
    /// flipped 180° and in/out channels swapped (dx = conv_transpose(dy) =
    /// this conv applied to dy, since stride 1, pad 1).
    pub fn transposed(weight: &[f32], cout: usize, cin: usize, input: (usize, usize)) -> Self {
        assert_eq!(weight.len(), cout * cin * 9, "Winograd: weight shape");
        let mut flipped = vec![0f32; weight.len()];
        for co in 0..cout {
            for ci in 0..cin {
                for k in 0..9 {
                    flipped[(ci * cout + co) * 9 + 8 - k] = weight[(co * cin + ci) * 9 + k];
                }
            }
        }
        Self::new(&flipped, cin, cout, input)
    }

    /// Tiles per block (a test and benchmark knob; results do not depend on it).
    #[cfg(test)]
    fn with_block(mut self, block: usize) -> Self {
        self.block = block.max(1);
        self
    }

    /// `y [n, h, w, cout]` (channel-last) = conv(`x [n, h, w, cin]`) + bias
    /// (if `Some`); `accumulate` adds into `y` instead of overwriting;
    /// `scratch` is reused.
    pub fn forward(
        &self,
        n: usize,
        x: &[f32],
        y: &mut [f32],
        bias: Option<&[f32]>,
        accumulate: bool,
        scratch: &mut Vec<f32>,
    ) {
        let (h, w) = self.input;
        let (cin, cols) = (self.cin, self.cols);
        assert!(x.len() >= n * h * w * cin, "Winograd: input too short");
        assert!(
            y.len() >= n * h * w * self.cout,
            "Winograd: output too short"
        );
        if let Some(b) = bias {
            assert_eq!(b.len(), self.cout, "Winograd: bias length");
        }
        let tiles = n * h.div_ceil(2) * w.div_ceil(2);
        // Equal blocks: a short last one would stream all of U for a few rows.
        let blocks = tiles.div_ceil(self.block);
        let most = tiles.div_ceil(blocks.max(1)).max(2);
        scratch.resize(16 * (most * (cin + cols) + 2 * SLAB_PAD), 0.0);
        let (v, m) = scratch.split_at_mut(16 * (most * cin + SLAB_PAD));
        let pieces = cin.div_ceil(MAX_INNER);
        for b in 0..blocks {
            let (first, end) = (tiles * b / blocks, tiles * (b + 1) / blocks);
            let len = end - first;
            // At least two rows: one row would take the crate's vector path.
            let rows = len.max(2);
            let block = Block {
                rows,
                v_slab: rows * cin + SLAB_PAD,
                m_slab: rows * cols + SLAB_PAD,
            };
            let v = &mut v[..16 * block.v_slab];
            let m = &mut m[..16 * block.m_slab];
            if len < rows {
                v.fill(0.0);
            }
            self.input_block(x, first, len, block, v);
            for (xi, (v, m)) in v
                .chunks_exact(block.v_slab)
                .zip(m.chunks_exact_mut(block.m_slab))
                .enumerate()
            {
                let u = &self.u[xi * cin * cols..][..cin * cols];
                for p in 0..pieces {
                    let (c0, c1) = (cin * p / pieces, cin * (p + 1) / pieces);
                    matmul(
                        m,
                        MatRef::row_major(&v[rows * c0..rows * c1], rows, c1 - c0),
                        MatRef::row_major(&u[c0 * cols..c1 * cols], c1 - c0, cols),
                        p > 0,
                    );
                }
            }
            self.output_block(m, first, len, block, (y, bias, accumulate));
        }
    }

    /// Sample, tile row and tile column of tile `tile` of the batch.
    fn locate(&self, tile: usize) -> (usize, usize, usize) {
        let (th, tw) = (self.input.0.div_ceil(2), self.input.1.div_ceil(2));
        (tile / (th * tw), tile % (th * tw) / tw, tile % tw)
    }

    /// Transforms batch tiles `first..first + len` into `v` (see
    /// [`Self::input_tile`]), eight channels per step where the CPU has
    /// AVX2, else four (what SSE2's 16 registers hold without spilling). The
    /// arithmetic is the same element-wise additions either way.
    fn input_block(&self, x: &[f32], first: usize, len: usize, block: Block, v: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { self.input_block_avx2(x, first, len, block, v) };
        }
        for t in 0..len {
            self.input_tile::<4>(x, first + t, t, block, v);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn input_block_avx2(
        &self,
        x: &[f32],
        first: usize,
        len: usize,
        block: Block,
        v: &mut [f32],
    ) {
        for t in 0..len {
            self.input_tile::<8>(x, first + t, t, block, v);
        }
    }

    /// Transforms the block's products back into `y` (see
    /// [`Self::output_tile`]); vector width as in [`Self::input_block`].
    fn output_block(&self, m: &[f32], first: usize, len: usize, block: Block, out: Out) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { self.output_block_avx2(m, first, len, block, out) };
        }
        let (y, bias, accumulate) = out;
        for t in 0..len {
            self.output_tile::<4>(m, first + t, t, block, y, bias, accumulate);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn output_block_avx2(
        &self,
        m: &[f32],
        first: usize,
        len: usize,
        block: Block,
        out: Out,
    ) {
        let (y, bias, accumulate) = out;
        for t in 0..len {
            self.output_tile::<8>(m, first + t, t, block, y, bias, accumulate);
        }
    }

    /// `Bᵀ d B` of batch tile `tile` into row `t` of the block's `v`, laid
    /// out `[16][piece][rows][piece width]` so that each piece of each of the
    /// 16 matrices is row-major and contiguous; `L` channels per step.
    #[inline(always)]
    fn input_tile<const L: usize>(
        &self,
        x: &[f32],
        tile: usize,
        t: usize,
        block: Block,
        v: &mut [f32],
    ) {
        let (h, w) = self.input;
        let cin = self.cin;
        let (s, ty, tx) = self.locate(tile);
        // The 16 pixels, zeros outside the image.
        let mut d: [&[f32]; 16] = [&self.zeros; 16];
        for (k, d) in d.iter_mut().enumerate() {
            let (iy, ix) = (
                (2 * ty + k / 4).wrapping_sub(1),
                (2 * tx + k % 4).wrapping_sub(1),
            );
            if iy < h && ix < w {
                *d = &x[((s * h + iy) * w + ix) * cin..][..cin];
            }
        }
        let pieces = cin.div_ceil(MAX_INNER);
        for p in 0..pieces {
            let (c0, c1) = (cin * p / pieces, cin * (p + 1) / pieces);
            let row = block.rows * c0 + t * (c1 - c0);
            let mut c = c0;
            while c + L <= c1 {
                input_lanes::<L>(&d, c, L, v, block.v_slab, row + c - c0);
                c += L;
            }
            if c < c1 {
                input_lanes::<L>(&d, c, c1 - c, v, block.v_slab, row + c - c0);
            }
        }
    }

    /// `Aᵀ m A` of block row `t` (batch tile `tile`) into `y`, dropping the
    /// outputs an odd size leaves outside the image.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn output_tile<const L: usize>(
        &self,
        m: &[f32],
        tile: usize,
        t: usize,
        block: Block,
        y: &mut [f32],
        bias: Option<&[f32]>,
        accumulate: bool,
    ) {
        let (h, w) = self.input;
        let (cout, cols) = (self.cout, self.cols);
        let (s, ty, tx) = self.locate(tile);
        let mut c = 0;
        while c < cout {
            let l = L.min(cout - c);
            let mut out = if l == L {
                output_lanes::<L>(m, t * cols + c, block.m_slab, L)
            } else {
                output_lanes::<L>(m, t * cols + c, block.m_slab, l)
            };
            if let Some(b) = bias {
                let b = load::<L>(&b[c..], l);
                for o in &mut out {
                    *o = add(o, &b);
                }
            }
            for (k, o) in out.iter().enumerate() {
                let (oy, ox) = (2 * ty + k / 2, 2 * tx + k % 2);
                if oy >= h || ox >= w {
                    continue;
                }
                let dst = &mut y[((s * h + oy) * w + ox) * cout + c..];
                if accumulate {
                    let sum = add(&load::<L>(dst, l), o);
                    store(dst, &sum, l);
                } else {
                    store(dst, o, l);
                }
            }
            c += l;
        }
    }
}

/// `Bᵀ d B` for channels `c..c + l` (`l ≤ L`) of the 16 input pixels `d`
/// (the tile row-major), matrix ξ's value going to `v[ξ·slab + at..]`, with
/// `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]`. Row
/// by row of `Bᵀ d`, then along it by `B`: eight vectors live at a time,
/// where all 16 at once would spill registers. Written out rather than
/// table-driven, and without closures or `array::from_fn`: a loop the
/// compiler does not unroll keeps a runtime sign test, and a call it leaves
/// un-inlined loses the caller's AVX2.
#[inline(always)]
fn input_lanes<const L: usize>(
    d: &[&[f32]; 16],
    c: usize,
    l: usize,
    v: &mut [f32],
    slab: usize,
    at: usize,
) {
    let mut r = [[0f32; L]; 4];
    for (j, r) in r.iter_mut().enumerate() {
        *r = sub(&load(&d[j][c..], l), &load(&d[8 + j][c..], l));
    }
    input_row(&r, &mut v[at..], slab, l);
    for (j, r) in r.iter_mut().enumerate() {
        *r = add(&load(&d[4 + j][c..], l), &load(&d[8 + j][c..], l));
    }
    input_row(&r, &mut v[4 * slab + at..], slab, l);
    for (j, r) in r.iter_mut().enumerate() {
        *r = sub(&load(&d[8 + j][c..], l), &load(&d[4 + j][c..], l));
    }
    input_row(&r, &mut v[8 * slab + at..], slab, l);
    for (j, r) in r.iter_mut().enumerate() {
        *r = sub(&load(&d[4 + j][c..], l), &load(&d[12 + j][c..], l));
    }
    input_row(&r, &mut v[12 * slab + at..], slab, l);
}

/// One row `r` of `Bᵀ d` times `B`, into `v[0]`, `v[slab]`, `v[2·slab]`,
/// `v[3·slab]` onwards.
#[inline(always)]
fn input_row<const L: usize>(r: &[[f32; L]; 4], v: &mut [f32], slab: usize, l: usize) {
    store(v, &sub(&r[0], &r[2]), l);
    store(&mut v[slab..], &add(&r[1], &r[2]), l);
    store(&mut v[2 * slab..], &sub(&r[2], &r[1]), l);
    store(&mut v[3 * slab..], &sub(&r[1], &r[3]), l);
}

/// `Aᵀ m A` for `l ≤ L` channels, matrix ξ's value read at
/// `m[ξ·slab + at..]`, `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`; returns the
/// 2×2 outputs row-major.
#[inline(always)]
fn output_lanes<const L: usize>(m: &[f32], at: usize, slab: usize, l: usize) -> [[f32; L]; 4] {
    let mut top = [[0f32; L]; 4];
    let mut bottom = [[0f32; L]; 4];
    for j in 0..4 {
        let (m0, m1) = (
            load::<L>(&m[j * slab + at..], l),
            load::<L>(&m[(4 + j) * slab + at..], l),
        );
        let (m2, m3) = (
            load::<L>(&m[(8 + j) * slab + at..], l),
            load::<L>(&m[(12 + j) * slab + at..], l),
        );
        top[j] = add(&add(&m0, &m1), &m2);
        bottom[j] = sub(&sub(&m1, &m2), &m3);
    }
    [
        add(&add(&top[0], &top[1]), &top[2]),
        sub(&sub(&top[1], &top[2]), &top[3]),
        add(&add(&bottom[0], &bottom[1]), &bottom[2]),
        sub(&sub(&bottom[1], &bottom[2]), &bottom[3]),
    ]
}

/// The first `l` values of `src` (`l ≤ L`), zeros after. A whole vector is
/// one fixed-size copy: `copy_from_slice` of a runtime length would call
/// `memmove` for 16 or 32 bytes.
#[inline(always)]
fn load<const L: usize>(src: &[f32], l: usize) -> [f32; L] {
    if l == L {
        return src[..L].try_into().unwrap_or([0.0; L]);
    }
    let mut out = [0f32; L];
    for (o, s) in out.iter_mut().zip(&src[..l]) {
        *o = *s;
    }
    out
}

/// Writes the first `l` values of `lanes` to the start of `dst`.
#[inline(always)]
fn store<const L: usize>(dst: &mut [f32], lanes: &[f32; L], l: usize) {
    if l == L {
        dst[..L].copy_from_slice(lanes);
        return;
    }
    for (d, s) in dst[..l].iter_mut().zip(lanes) {
        *d = *s;
    }
}

#[inline(always)]
fn add<const L: usize>(a: &[f32; L], b: &[f32; L]) -> [f32; L] {
    let mut out = [0f32; L];
    for k in 0..L {
        out[k] = a[k] + b[k];
    }
    out
}

#[inline(always)]
fn sub<const L: usize>(a: &[f32; L], b: &[f32; L]) -> [f32; L] {
    let mut out = [0f32; L];
    for k in 0..L {
        out[k] = a[k] - b[k];
    }
    out
}

#[cfg(test)]
mod tests;
