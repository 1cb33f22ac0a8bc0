//! Spatial transformations of images, shared by the equivariance checks, the
//! corruptions and (on the strong-attacks side) the spatial attack: integer
//! shifts, flips, and bilinear resampling under affine maps (sub-pixel
//! translation, rotation, shear, scale), plus the derivatives of the bilinear
//! resampling at the identity that the Lie derivative needs.
//!
//! Conventions, the same everywhere in this module:
//! - an image is a row-major `[C, H, W]` slice of `f32`; a batch is `N` of them
//!   back to back (see [`map_batch`]); every channel is transformed alike;
//! - pixel `(row i, column j)` has its centre at coordinates `(x, y) = (j, i)`;
//!   `x` grows to the right and `y` downwards, as the image is displayed;
//! - `dx > 0` moves the content right, `dy > 0` moves it down;
//! - rotations turn about the image centre `((W − 1)/2, (H − 1)/2)`, and a
//!   positive angle turns the content counter-clockwise as displayed — the
//!   convention of torchvision's `rotate(img, angle)`;
//! - resampling is bilinear; a neighbour outside the image reads as 0
//!   ([`Border::Zero`], PyTorch's `grid_sample(padding_mode="zeros")`), or
//!   wraps around ([`Border::Circular`]). So `translate` by an integer equals
//!   [`shift_zero`] exactly, and [`shift_circular`] equals `torch.roll`.
//!
//! Coordinates are computed in f64 and each output pixel is rounded to f32
//! once, so a rotation by 90° is an exact permutation up to the last bit.

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

/// How pixels outside the image are read when resampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    /// Outside is 0 (black for `[0, 1]` images).
    Zero,
    /// The image repeats: a pixel past the right edge is the left edge's.
    Circular,
}

/// The map from an output pixel's coordinates to the source coordinates it
/// is read from: `(sx, sy) = a · (x, y) + b`. Warping with the inverse map
/// is what makes every output pixel well defined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InverseAffine {
    /// Linear part, rows `[sx; sy]` over columns `[x, y]`.
    pub a: [[f64; 2]; 2],
    /// Offset.
    pub b: [f64; 2],
}

fn centre(h: usize, w: usize) -> (f64, f64) {
    ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0)
}

impl InverseAffine {
    /// The identity.
    pub fn identity() -> Self {
        InverseAffine {
            a: [[1.0, 0.0], [0.0, 1.0]],
            b: [0.0, 0.0],
        }
    }

    /// Rotate the content by `angle_deg` (counter-clockwise as displayed)
    /// about the centre of an `h × w` image, then move it by `(dx, dy)`.
    pub fn rigid(h: usize, w: usize, angle_deg: f64, dx: f64, dy: f64) -> Self {
        let (cx, cy) = centre(h, w);
        let (s, c) = angle_deg.to_radians().sin_cos();
        // Content: p = R (p_s − ctr) + ctr + t with R = [[c, s], [−s, c]]
        // (y points down), so p_s = Rᵀ (p − ctr − t) + ctr.
        let a = [[c, -s], [s, c]];
        let (qx, qy) = (cx + dx, cy + dy);
        InverseAffine {
            a,
            b: [
                cx - (a[0][0] * qx + a[0][1] * qy),
                cy - (a[1][0] * qx + a[1][1] * qy),
            ],
        }
    }

    /// Shear the content horizontally about the centre row:
    /// `x_out = x + factor · (y − cy)`.
    pub fn shear_x(h: usize, w: usize, factor: f64) -> Self {
        let (_, cy) = centre(h, w);
        InverseAffine {
            a: [[1.0, -factor], [0.0, 1.0]],
            b: [factor * cy, 0.0],
        }
    }

    /// Scale the content by `factor` about the centre (`< 1` shrinks it).
    pub fn scale(h: usize, w: usize, factor: f64) -> Self {
        let (cx, cy) = centre(h, w);
        let inv = 1.0 / factor;
        InverseAffine {
            a: [[inv, 0.0], [0.0, inv]],
            b: [cx - cx * inv, cy - cy * inv],
        }
    }

    fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (
            self.a[0][0] * x + self.a[0][1] * y + self.b[0],
            self.a[1][0] * x + self.a[1][1] * y + self.b[1],
        )
    }
}

fn check(x: &[f32], shape: [usize; 3]) {
    assert_eq!(
        x.len(),
        shape[0] * shape[1] * shape[2],
        "image of {} values does not have shape {shape:?}",
        x.len()
    );
}

/// Pixel `(i, j)` of a plane, `None` outside a zero-bordered image.
fn read(plane: &[f32], h: usize, w: usize, i: i64, j: i64, border: Border) -> Option<f32> {
    match border {
        Border::Zero => {
            if i < 0 || j < 0 || i >= h as i64 || j >= w as i64 {
                None
            } else {
                Some(plane[i as usize * w + j as usize])
            }
        }
        Border::Circular => {
            let i = i.rem_euclid(h as i64) as usize;
            let j = j.rem_euclid(w as i64) as usize;
            Some(plane[i * w + j])
        }
    }
}

/// Bilinear value of `plane` (`h × w`) at source coordinates `(sx, sy)`.
pub fn bilinear(plane: &[f32], h: usize, w: usize, sx: f64, sy: f64, border: Border) -> f64 {
    let (x0, y0) = (sx.floor(), sy.floor());
    let (fx, fy) = (sx - x0, sy - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let mut v = 0.0;
    for (di, wy) in [(0, 1.0 - fy), (1, fy)] {
        for (dj, wx) in [(0, 1.0 - fx), (1, fx)] {
            let weight = wy * wx;
            if weight != 0.0 {
                if let Some(p) = read(plane, h, w, y0 + di, x0 + dj, border) {
                    v += weight * p as f64;
                }
            }
        }
    }
    v
}

/// Resamples `x` (`[C, H, W]`) bilinearly: output pixel `(x, y)` reads the
/// source at `map(x, y)`.
pub fn warp(x: &[f32], shape: [usize; 3], map: &InverseAffine, border: Border) -> Vec<f32> {
    check(x, shape);
    let [c, h, w] = shape;
    let mut out = vec![0f32; x.len()];
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        let dst = &mut out[ch * h * w..(ch + 1) * h * w];
        for i in 0..h {
            for j in 0..w {
                let (sx, sy) = map.apply(j as f64, i as f64);
                dst[i * w + j] = bilinear(plane, h, w, sx, sy, border) as f32;
            }
        }
    }
    out
}

/// Rotates the content by `angle_deg`, counter-clockwise as displayed, about
/// the image centre; bilinear, zero fill (torchvision's `rotate` with
/// bilinear interpolation).
pub fn rotate(x: &[f32], shape: [usize; 3], angle_deg: f64) -> Vec<f32> {
    let map = InverseAffine::rigid(shape[1], shape[2], angle_deg, 0.0, 0.0);
    warp(x, shape, &map, Border::Zero)
}

/// Moves the content by `(dx, dy)` pixels (right and down positive),
/// sub-pixel, bilinear, zero fill.
pub fn translate(x: &[f32], shape: [usize; 3], dx: f64, dy: f64) -> Vec<f32> {
    let map = InverseAffine::rigid(shape[1], shape[2], 0.0, dx, dy);
    warp(x, shape, &map, Border::Zero)
}

/// Like [`translate`], but what leaves one edge comes back at the other.
pub fn translate_circular(x: &[f32], shape: [usize; 3], dx: f64, dy: f64) -> Vec<f32> {
    let map = InverseAffine::rigid(shape[1], shape[2], 0.0, dx, dy);
    warp(x, shape, &map, Border::Circular)
}

/// Rotation by `angle_deg` then translation by `(dx, dy)`, in one bilinear
/// resampling with zero fill: the transformation of Engstrom et al.'s
/// spatial attack.
pub fn rigid(x: &[f32], shape: [usize; 3], angle_deg: f64, dx: f64, dy: f64) -> Vec<f32> {
    let map = InverseAffine::rigid(shape[1], shape[2], angle_deg, dx, dy);
    warp(x, shape, &map, Border::Zero)
}

fn shift(x: &[f32], shape: [usize; 3], dx: i64, dy: i64, border: Border) -> Vec<f32> {
    check(x, shape);
    let [c, h, w] = shape;
    let mut out = vec![0f32; x.len()];
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for i in 0..h {
            for j in 0..w {
                if let Some(v) = read(plane, h, w, i as i64 - dy, j as i64 - dx, border) {
                    out[ch * h * w + i * w + j] = v;
                }
            }
        }
    }
    out
}

/// Moves the content by whole pixels, wrapping around the edges:
/// `torch.roll(x, shifts=(dy, dx), dims=(-2, -1))`.
pub fn shift_circular(x: &[f32], shape: [usize; 3], dx: i64, dy: i64) -> Vec<f32> {
    shift(x, shape, dx, dy, Border::Circular)
}

/// Moves the content by whole pixels; what enters is 0.
pub fn shift_zero(x: &[f32], shape: [usize; 3], dx: i64, dy: i64) -> Vec<f32> {
    shift(x, shape, dx, dy, Border::Zero)
}

/// Mirrors left–right (`torch.flip(x, dims=(-1,))`).
pub fn flip_h(x: &[f32], shape: [usize; 3]) -> Vec<f32> {
    check(x, shape);
    let [_, _, w] = shape;
    let mut out = x.to_vec();
    for row in out.chunks_mut(w) {
        row.reverse();
    }
    out
}

/// Mirrors top–bottom (`torch.flip(x, dims=(-2,))`).
pub fn flip_v(x: &[f32], shape: [usize; 3]) -> Vec<f32> {
    check(x, shape);
    let [c, h, w] = shape;
    let mut out = vec![0f32; x.len()];
    for ch in 0..c {
        for i in 0..h {
            let src = &x[(ch * h + i) * w..(ch * h + i + 1) * w];
            out[(ch * h + h - 1 - i) * w..(ch * h + h - i) * w].copy_from_slice(src);
        }
    }
    out
}

/// The axis of a translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Horizontal (`dx`).
    X,
    /// Vertical (`dy`).
    Y,
}

/// Central differences `(∂x/∂col, ∂x/∂row)` of one plane at pixel `(i, j)`,
/// reading outside pixels as `border` says.
fn central(plane: &[f32], h: usize, w: usize, i: usize, j: usize, border: Border) -> (f64, f64) {
    let at = |di: i64, dj: i64| {
        read(plane, h, w, i as i64 + di, j as i64 + dj, border).unwrap_or(0.0) as f64
    };
    ((at(0, 1) - at(0, -1)) / 2.0, (at(1, 0) - at(-1, 0)) / 2.0)
}

/// `d/dt translate(x, t, 0)` (or `(0, t)` for [`Axis::Y`]) at `t = 0`, per
/// pixel moved. Bilinear resampling has a kink at whole-pixel positions; this
/// is its symmetric derivative, `(T_h x − T_−h x) / 2h` for any `0 < h < 1`,
/// which is minus the image's central difference along the axis.
pub fn translate_generator(x: &[f32], shape: [usize; 3], axis: Axis, border: Border) -> Vec<f32> {
    check(x, shape);
    let [c, h, w] = shape;
    let mut out = vec![0f32; x.len()];
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for i in 0..h {
            for j in 0..w {
                let (gx, gy) = central(plane, h, w, i, j, border);
                let g = match axis {
                    Axis::X => gx,
                    Axis::Y => gy,
                };
                out[ch * h * w + i * w + j] = -g as f32;
            }
        }
    }
    out
}

/// `d/dθ rotate(x, θ)` at `θ = 0`, per radian, zero fill: the symmetric
/// derivative of the bilinear resampling, `−(y − cy)·∂x/∂col + (x − cx)·∂x/∂row`
/// with central differences (the limit of `(R_h x − R_−h x) / 2h`).
pub fn rotate_generator(x: &[f32], shape: [usize; 3]) -> Vec<f32> {
    check(x, shape);
    let [c, h, w] = shape;
    let (cx, cy) = centre(h, w);
    let mut out = vec![0f32; x.len()];
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for i in 0..h {
            for j in 0..w {
                let (gx, gy) = central(plane, h, w, i, j, Border::Zero);
                let (u, v) = (j as f64 - cx, i as f64 - cy);
                out[ch * h * w + i * w + j] = (-v * gx + u * gy) as f32;
            }
        }
    }
    out
}

/// Applies `f` to every image of a row-major `[N, C, H, W]` batch.
pub fn map_batch(x: &[f32], shape: [usize; 4], f: impl Fn(&[f32]) -> Vec<f32>) -> Vec<f32> {
    let per = shape[1] * shape[2] * shape[3];
    assert_eq!(
        x.len(),
        shape[0] * per,
        "batch does not have shape {shape:?}"
    );
    let mut out = Vec::with_capacity(x.len());
    for item in x.chunks(per) {
        out.extend(f(item));
    }
    out
}

/// Applies `f` (taking one `[C, H, W]` image) to every image of a
/// `[N, C, H, W]` f32 tensor, e.g. `apply_to_tensor(&x, |img, s| rotate(img, s, 15.0))`.
pub fn apply_to_tensor(x: &Tensor, f: impl Fn(&[f32], [usize; 3]) -> Vec<f32>) -> Result<Tensor> {
    let &[n, c, h, w] = x.dims() else {
        return Err(Error::Invalid(format!(
            "expected an [N, C, H, W] batch, got {:?}",
            x.dims()
        )));
    };
    let values: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let out = map_batch(&values, [n, c, h, w], |img| f(img, [c, h, w]));
    Ok(Tensor::from_vec(out, (n, c, h, w), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(shape: [usize; 3]) -> Vec<f32> {
        (0..shape.iter().product::<usize>())
            .map(|k| ((k * 37) % 101) as f32 / 100.0)
            .collect()
    }

    #[test]
    fn integer_translations_equal_integer_shifts_exactly() {
        let s = [2, 5, 7];
        let x = ramp(s);
        for (dx, dy) in [(1, 0), (0, -2), (3, 2), (-1, -1)] {
            assert_eq!(
                translate(&x, s, dx as f64, dy as f64),
                shift_zero(&x, s, dx, dy)
            );
            assert_eq!(
                translate_circular(&x, s, dx as f64, dy as f64),
                shift_circular(&x, s, dx, dy)
            );
        }
    }

    #[test]
    fn shifts_follow_torch_roll_by_hand() {
        // One 2×3 plane: [[a b c], [d e f]] rolled right by 1 and down by 1.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            shift_circular(&x, [1, 2, 3], 1, 1),
            [6.0, 4.0, 5.0, 3.0, 1.0, 2.0]
        );
        assert_eq!(
            shift_zero(&x, [1, 2, 3], 1, 1),
            [0.0, 0.0, 0.0, 0.0, 1.0, 2.0]
        );
        assert_eq!(flip_h(&x, [1, 2, 3]), [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        assert_eq!(flip_v(&x, [1, 2, 3]), [4.0, 5.0, 6.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn quarter_turns_are_counter_clockwise_permutations() {
        // Counter-clockwise as displayed: the top row becomes the left
        // column, read bottom to top (numpy's rot90).
        for n in [4usize, 5] {
            let s = [1, n, n];
            let x = ramp(s);
            let r = rotate(&x, s, 90.0);
            for i in 0..n {
                for j in 0..n {
                    let expected = x[j * n + (n - 1 - i)];
                    assert!((r[i * n + j] - expected).abs() < 1e-6, "{n}: ({i},{j})");
                }
            }
            let back = rotate(&r, s, -90.0);
            for (a, b) in back.iter().zip(&x) {
                assert!((a - b).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn half_pixel_translation_averages_neighbours_with_zero_outside() {
        let x = [1.0, 3.0, 5.0];
        let t = translate(&x, [1, 1, 3], 0.5, 0.0);
        assert_eq!(t, [0.5, 2.0, 4.0]);
        let t = translate_circular(&x, [1, 1, 3], 0.5, 0.0);
        assert_eq!(t, [3.0, 2.0, 4.0]);
    }

    #[test]
    fn shear_and_scale_move_points_as_documented() {
        let s = [1, 5, 5];
        let mut x = vec![0f32; 25];
        x[0] = 1.0; // top-left corner, (x, y) = (0, 0), centre (2, 2)
                    // Shear by 0.5: x_out = 0 + 0.5·(0 − 2) = −1 → leaves the image.
        assert!(
            warp(&x, s, &InverseAffine::shear_x(5, 5, 0.5), Border::Zero)
                .iter()
                .all(|&v| v == 0.0)
        );
        // Scale by 0.5: (0, 0) → centre + 0.5·(−2, −2) = (1, 1).
        let y = warp(&x, s, &InverseAffine::scale(5, 5, 0.5), Border::Zero);
        assert!((y[6] - 1.0).abs() < 1e-6, "{y:?}");
    }

    /// `warp` without the final rounding to f32, for finite differences.
    fn warp64(x: &[f32], shape: [usize; 3], map: &InverseAffine, border: Border) -> Vec<f64> {
        let [c, h, w] = shape;
        let mut out = Vec::with_capacity(x.len());
        for ch in 0..c {
            let plane = &x[ch * h * w..(ch + 1) * h * w];
            for i in 0..h {
                for j in 0..w {
                    let (sx, sy) = map.apply(j as f64, i as f64);
                    out.push(bilinear(plane, h, w, sx, sy, border));
                }
            }
        }
        out
    }

    #[test]
    fn generators_match_finite_differences_of_the_resampling() {
        let s = [2, 6, 7];
        let x = ramp(s);
        // Small enough that rotation's second-order term (h·dx·dy) vanishes.
        let h = 1e-6;
        let fd = |f: &dyn Fn(f64) -> InverseAffine, border| -> Vec<f64> {
            let plus = warp64(&x, s, &f(h), border);
            let minus = warp64(&x, s, &f(-h), border);
            plus.iter()
                .zip(&minus)
                .map(|(a, b)| (a - b) / (2.0 * h))
                .collect()
        };
        let cases = [
            (
                translate_generator(&x, s, Axis::X, Border::Zero),
                fd(&|t| InverseAffine::rigid(6, 7, 0.0, t, 0.0), Border::Zero),
            ),
            (
                translate_generator(&x, s, Axis::Y, Border::Circular),
                fd(
                    &|t| InverseAffine::rigid(6, 7, 0.0, 0.0, t),
                    Border::Circular,
                ),
            ),
            (
                rotate_generator(&x, s),
                fd(
                    &|t| InverseAffine::rigid(6, 7, t.to_degrees(), 0.0, 0.0),
                    Border::Zero,
                ),
            ),
        ];
        for (k, (exact, approx)) in cases.iter().enumerate() {
            assert!(exact.iter().any(|v| v.abs() > 0.1));
            for (a, b) in exact.iter().zip(approx) {
                assert!((*a as f64 - b).abs() < 1e-4, "case {k}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn tensors_are_mapped_image_by_image() {
        let x = ramp([6, 1, 3]);
        let t = Tensor::from_vec(x.clone(), (2, 1, 3, 3), &Device::Cpu).unwrap();
        let r = apply_to_tensor(&t, flip_h).unwrap();
        let r: Vec<f32> = r.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(r, map_batch(&x, [2, 1, 3, 3], |img| flip_h(img, [1, 3, 3])));
    }
}
