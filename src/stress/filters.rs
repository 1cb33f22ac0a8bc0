//! Small image filters the noise families and corruptions share: a separable
//! Gaussian blur with mirrored edges (scipy's `gaussian_filter`,
//! `mode="reflect"`, truncated at 4σ), area-average resizing and nearest
//! upsampling (pixelation), and bilinear upsampling of a coarse grid
//! (low-frequency noise).

use crate::transform::{bilinear, Border};

/// Index `i` mirrored into `0..n` the way scipy's `reflect` mode does
/// (`d c b a | a b c d | d c b a`).
fn reflect(mut i: i64, n: usize) -> usize {
    let n = n as i64;
    let period = 2 * n;
    i = i.rem_euclid(period);
    if i >= n {
        i = period - 1 - i;
    }
    i as usize
}

/// Blurs one `h × w` plane with a Gaussian of standard deviation `sigma`
/// pixels (`sigma = 0` returns the plane unchanged).
pub fn gaussian_blur(plane: &[f32], h: usize, w: usize, sigma: f64) -> Vec<f32> {
    if sigma <= 0.0 {
        return plane.to_vec();
    }
    let radius = (4.0 * sigma + 0.5) as i64;
    let mut kernel: Vec<f64> = (-radius..=radius)
        .map(|k| (-0.5 * (k as f64 / sigma).powi(2)).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    let mut rows = vec![0f64; h * w];
    for i in 0..h {
        for j in 0..w {
            let mut acc = 0.0;
            for (t, k) in kernel.iter().enumerate() {
                acc += k * plane[i * w + reflect(j as i64 + t as i64 - radius, w)] as f64;
            }
            rows[i * w + j] = acc;
        }
    }
    let mut out = vec![0f32; h * w];
    for i in 0..h {
        for j in 0..w {
            let mut acc = 0.0;
            for (t, k) in kernel.iter().enumerate() {
                acc += k * rows[reflect(i as i64 + t as i64 - radius, h) * w + j];
            }
            out[i * w + j] = acc as f32;
        }
    }
    out
}

/// Averages `plane` (`h × w`) over the areas of a `nh × nw` grid: each output
/// pixel is the area-weighted mean of the input pixels it covers.
pub fn area_resize(plane: &[f32], h: usize, w: usize, nh: usize, nw: usize) -> Vec<f32> {
    // Per output index, the input indices it overlaps and their weights.
    let spans = |n: usize, m: usize| -> Vec<Vec<(usize, f64)>> {
        let scale = n as f64 / m as f64;
        (0..m)
            .map(|o| {
                let (lo, hi) = (o as f64 * scale, (o + 1) as f64 * scale);
                let mut v = Vec::new();
                let mut i = lo.floor() as usize;
                while (i as f64) < hi && i < n {
                    let overlap = (hi.min(i as f64 + 1.0) - lo.max(i as f64)).max(0.0);
                    if overlap > 0.0 {
                        v.push((i, overlap / scale));
                    }
                    i += 1;
                }
                v
            })
            .collect()
    };
    let (ys, xs) = (spans(h, nh), spans(w, nw));
    let mut out = vec![0f32; nh * nw];
    for (oi, yspan) in ys.iter().enumerate() {
        for (oj, xspan) in xs.iter().enumerate() {
            let mut acc = 0.0;
            for &(i, wy) in yspan {
                for &(j, wx) in xspan {
                    acc += wy * wx * plane[i * w + j] as f64;
                }
            }
            out[oi * nw + oj] = acc as f32;
        }
    }
    out
}

/// Nearest-neighbour upsampling of a `sh × sw` plane to `h × w` (pixel
/// centres aligned: output `i` reads `floor((i + 0.5)·sh/h)`).
pub fn nearest_resize(plane: &[f32], sh: usize, sw: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0f32; h * w];
    for i in 0..h {
        let si = (((i as f64 + 0.5) * sh as f64 / h as f64) as usize).min(sh - 1);
        for j in 0..w {
            let sj = (((j as f64 + 0.5) * sw as f64 / w as f64) as usize).min(sw - 1);
            out[i * w + j] = plane[si * sw + sj];
        }
    }
    out
}

/// Bilinear upsampling of a `g × g` grid to `h × w`, corners aligned (the
/// grid's corners land on the image's corner pixels).
pub fn upsample_grid(grid: &[f32], g: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0f32; h * w];
    let step = |n: usize| {
        if n > 1 {
            (g - 1) as f64 / (n - 1) as f64
        } else {
            0.0
        }
    };
    let (sy, sx) = (step(h), step(w));
    for i in 0..h {
        for j in 0..w {
            out[i * w + j] =
                bilinear(grid, g, g, j as f64 * sx, i as f64 * sy, Border::Zero) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_constants_and_the_mean_of_a_spike_far_from_edges() {
        let c = vec![0.7f32; 49];
        assert!(gaussian_blur(&c, 7, 7, 1.3)
            .iter()
            .all(|&v| (v - 0.7).abs() < 1e-6));
        let mut spike = vec![0f32; 21 * 21];
        spike[10 * 21 + 10] = 1.0;
        let b = gaussian_blur(&spike, 21, 21, 1.0);
        assert!((b.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // The 1-D kernel at offset 0 is 1/Σ exp(−k²/2) ≈ 0.3989 (truncated at 4σ).
        let k0: f64 = 1.0
            / (-4i32..=4)
                .map(|k| (-0.5 * (k * k) as f64).exp())
                .sum::<f64>();
        assert!((b[10 * 21 + 10] as f64 - k0 * k0).abs() < 1e-6);
    }

    #[test]
    fn reflect_mirrors_like_scipy() {
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, 3)).collect();
        assert_eq!(got, [2, 1, 0, 0, 1, 2, 2, 1, 0, 0]);
    }

    #[test]
    fn area_resize_averages_blocks_and_keeps_the_mean() {
        let plane: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(area_resize(&plane, 4, 4, 2, 2), [2.5, 4.5, 10.5, 12.5]);
        let r = area_resize(&plane, 4, 4, 3, 3);
        let mean: f32 = r.iter().sum::<f32>() / 9.0;
        assert!((mean - 7.5).abs() < 1e-5);
        assert_eq!(area_resize(&plane, 4, 4, 4, 4), plane);
        assert_eq!(
            nearest_resize(&[1.0, 2.0, 3.0, 4.0], 2, 2, 4, 4),
            [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0]
        );
    }

    #[test]
    fn upsampled_grids_hit_their_corners() {
        let g = [0.0, 1.0, 2.0, 3.0];
        let u = upsample_grid(&g, 2, 5, 5);
        assert_eq!((u[0], u[4], u[20], u[24]), (0.0, 1.0, 2.0, 3.0));
        assert!((u[12] - 1.5).abs() < 1e-6);
    }
}
