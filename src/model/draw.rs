//! Randomness inside a model, reproducible: Monte-Carlo dropout (a
//! `dropout` layer with `"active": true`) and random resizing and padding
//! (`random_resize_pad`, Xie et al. 2018). A randomized model's every call
//! draws afresh, so single-draw robustness overstates it; attacks average
//! gradients over draws instead (`eot_samples`, Athalye et al. 2018).
//!
//! Each input row gets its own key, hashed from the draw seed, the draw
//! number and the row's values, and every random layer draws from
//! [`Rng::for_item`] keyed by that and the layer's position. The key is the
//! row's content rather than its dataset index: it is then the same whatever
//! batch, shard or subset of rows an attack passes, without threading
//! indices through every call, and two calls at the same point and draw
//! agree (what makes a report reproducible). A new point is a new draw, as
//! it is in PyTorch. The fast engine draws the same from the same keys
//! (`engine/random.rs`); [`Classifier::logits_draw`](super::Classifier::logits_draw)
//! asks for another draw at the same point, which is what expectation over
//! transformation and the randomized-model sanity check need.

use candle_core::{DType, Device, Result as CResult, Tensor};

use crate::rng::Rng;

/// The draw a randomized model's verdicts are read from: the clean pass and
/// every attack's returned points (never an attack step, which uses draws
/// from 0). A point one draw happened to misclassify during an attack
/// counts as broken only if this independent draw misclassifies it too, as
/// AutoAttack checks each attack's points with a fresh forward pass.
pub const VERDICT_DRAW: u64 = u64::MAX;

/// Random streams, one per kind of random layer.
const DROPOUT: u64 = 0x64_726f_706f_7574;
const RESIZE_PAD: u64 = 0x72_6573_697a_6570;

/// One key per row of `x` (`[N, ...]`, the model's input before
/// normalization): a 64-bit hash of the seed, the draw number and the row's
/// values (their bit patterns, so `-0.0` and `0.0` differ, which only moves
/// to another draw).
pub fn row_keys(x: &Tensor, seed: u64, draw: u64) -> CResult<Vec<u64>> {
    let rows: Vec<Vec<f32>> = x.flatten_from(1)?.to_dtype(DType::F32)?.to_vec2()?;
    Ok(rows
        .iter()
        .map(|row| {
            let mut h = mix(seed ^ mix(draw.wrapping_add(0x6472_6177)));
            for pair in row.chunks(2) {
                let lo = pair[0].to_bits() as u64;
                let hi = pair.get(1).map_or(0, |v| v.to_bits() as u64);
                h = mix(h ^ (lo | hi << 32));
            }
            mix(h ^ row.len() as u64)
        })
        .collect())
}

/// SplitMix64's finaliser: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Monte-Carlo dropout on `x` (`[N, ...]`): each value kept with
/// probability `1 − p` and scaled by `1/(1 − p)`, as `nn.Dropout` in
/// training mode; row `r` draws from `keys[r]` and the layer's position
/// `node`. Differentiable (the gradient is masked the same way).
pub fn dropout(x: &Tensor, p: f64, keys: &[u64], node: usize) -> CResult<Tensor> {
    let dims = x.dims().to_vec();
    let per_row: usize = dims[1..].iter().product();
    let mut mask = Vec::with_capacity(keys.len() * per_row);
    for &key in keys {
        dropout_mask(key, node, p, per_row, &mut mask);
    }
    x.mul(&Tensor::from_vec(mask, dims, x.device())?.to_dtype(x.dtype())?)
}

/// Appends one row's dropout mask (`len` values in PyTorch's NCHW order:
/// 0, or `1/(1 − p)` for a kept value) drawn from `key` at layer `node`.
pub fn dropout_mask(key: u64, node: usize, p: f64, len: usize, mask: &mut Vec<f32>) {
    let scale = (1.0 / (1.0 - p)) as f32;
    let mut rng = Rng::for_item(key, DROPOUT, node as u64);
    mask.extend((0..len).map(|_| if rng.uniform_f64() < p { 0.0 } else { scale }));
}

/// Where one row's resized input lands: for each canvas cell (row-major
/// `canvas.0 × canvas.1`), the input pixel (`y · w + x`) it shows, or `h · w`
/// for the fill.
pub fn resize_pad_map(
    key: u64,
    node: usize,
    (h, w): (usize, usize),
    (min, max): (usize, usize),
    canvas: (usize, usize),
) -> Vec<u32> {
    let mut rng = Rng::for_item(key, RESIZE_PAD, node as u64);
    let rh = rng.int_inclusive(min as i64, max as i64) as usize;
    let rw = crate::model::spec::resized_width(rh, h, w);
    let top = rng.int_inclusive(0, (canvas.0 - rh) as i64) as usize;
    let left = rng.int_inclusive(0, (canvas.1 - rw) as i64) as usize;
    let fill = (h * w) as u32;
    let mut map = vec![fill; canvas.0 * canvas.1];
    for oy in 0..rh {
        // Nearest neighbour as PyTorch's `interpolate(mode="nearest")`:
        // source index floor(dst · in / out).
        let sy = oy * h / rh;
        for ox in 0..rw {
            let sx = ox * w / rw;
            map[(top + oy) * canvas.1 + left + ox] = (sy * w + sx) as u32;
        }
    }
    map
}

/// Random resizing and padding of `x` (`[N, C, H, W]`) into a `canvas`
/// filled with `value`; see [`resize_pad_map`]. Differentiable (a gather).
pub fn resize_pad(
    x: &Tensor,
    sizes: (usize, usize),
    canvas: (usize, usize),
    value: f64,
    keys: &[u64],
    node: usize,
) -> CResult<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let fill = Tensor::full(value as f32, (c, 1), x.device())?.to_dtype(x.dtype())?;
    let mut rows = Vec::with_capacity(n);
    for (r, &key) in keys.iter().enumerate() {
        let map = resize_pad_map(key, node, (h, w), sizes, canvas);
        let flat = Tensor::cat(&[&x.get(r)?.reshape((c, h * w))?, &fill], 1)?;
        let index = Tensor::from_vec(map, canvas.0 * canvas.1, &Device::Cpu)?;
        rows.push(
            flat.index_select(&index, 1)?
                .reshape((c, canvas.0, canvas.1))?,
        );
    }
    Tensor::stack(&rows, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(values: &[f32], n: usize) -> Tensor {
        Tensor::from_vec(values.to_vec(), (n, values.len() / n), &Device::Cpu).unwrap()
    }

    #[test]
    fn a_rows_key_depends_on_its_values_seed_and_draw_not_its_batch() {
        let a = [0.1f32, 0.2, 0.3, 0.4];
        let b = [0.1f32, 0.2, 0.3, 0.5];
        let ab = row_keys(&batch(&[a, b].concat(), 2), 7, 0).unwrap();
        let alone = row_keys(&batch(&b, 1), 7, 0).unwrap();
        assert_eq!(
            ab[1], alone[0],
            "a row's key is the same alone and in a batch"
        );
        assert_ne!(ab[0], ab[1], "another value, another key");
        assert_ne!(ab, row_keys(&batch(&[a, b].concat(), 2), 8, 0).unwrap());
        assert_ne!(ab, row_keys(&batch(&[a, b].concat(), 2), 7, 1).unwrap());
    }

    #[test]
    fn dropout_keeps_about_one_minus_p_and_rescales() {
        let x = Tensor::ones((4, 10_000), DType::F32, &Device::Cpu).unwrap();
        let keys = [1, 2, 3, 4];
        let y: Vec<Vec<f32>> = dropout(&x, 0.3, &keys, 5).unwrap().to_vec2().unwrap();
        for row in &y {
            let kept = row.iter().filter(|&&v| v != 0.0).count() as f64 / row.len() as f64;
            // 10,000 Bernoulli(0.7): standard deviation 0.0046.
            assert!((kept - 0.7).abs() < 0.02, "kept {kept}");
            assert!(row
                .iter()
                .all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
        }
        assert_ne!(y[0], y[1], "each row its own mask");
        let again: Vec<Vec<f32>> = dropout(&x, 0.3, &keys, 5).unwrap().to_vec2().unwrap();
        assert_eq!(y, again, "the same keys, the same masks");
        let other: Vec<Vec<f32>> = dropout(&x, 0.3, &keys, 6).unwrap().to_vec2().unwrap();
        assert_ne!(y, other, "another layer, another mask");
    }

    #[test]
    fn resize_pad_places_a_nearest_neighbour_copy_inside_the_fill() {
        // A 4×4 input with distinct values, in a 6×6 canvas.
        let values: Vec<f32> = (1..=16).map(|v| v as f32).collect();
        let x = Tensor::from_vec(values, (1, 1, 4, 4), &Device::Cpu).unwrap();
        let mut sizes = std::collections::BTreeSet::new();
        for key in 0..200u64 {
            let out = resize_pad(&x, (2, 6), (6, 6), -1.0, &[key], 0).unwrap();
            let out: Vec<f32> = out.flatten_all().unwrap().to_vec1().unwrap();
            let map = resize_pad_map(key, 0, (4, 4), (2, 6), (6, 6));
            let inside: Vec<usize> = (0..36).filter(|&i| map[i] != 16).collect();
            // The image is a solid r×r block, and every other cell is fill.
            let r = (inside.len() as f64).sqrt() as usize;
            assert_eq!(r * r, inside.len());
            assert!((2..=6).contains(&r));
            sizes.insert(r);
            let (top, left) = (inside[0] / 6, inside[0] % 6);
            for oy in 0..r {
                for ox in 0..r {
                    let v = out[(top + oy) * 6 + left + ox];
                    // Nearest neighbour: row floor(oy·4/r), column floor(ox·4/r).
                    assert_eq!(v, (oy * 4 / r * 4 + ox * 4 / r + 1) as f32);
                }
            }
            let fills = out.iter().filter(|&&v| v == -1.0).count();
            assert_eq!(fills, 36 - r * r);
        }
        assert_eq!(sizes.len(), 5, "every size from 2 to 6 drawn: {sizes:?}");
    }

    #[test]
    fn resize_pad_passes_gradients_to_the_pixels_it_shows() {
        let x = candle_core::Var::from_tensor(
            &Tensor::arange(0f32, 16.0, &Device::Cpu)
                .unwrap()
                .reshape((1, 1, 4, 4))
                .unwrap(),
        )
        .unwrap();
        let key = 11;
        let out = resize_pad(x.as_tensor(), (2, 6), (6, 6), 0.0, &[key], 0).unwrap();
        let grads = out.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // Each pixel's gradient counts the canvas cells showing it.
        let map = resize_pad_map(key, 0, (4, 4), (2, 6), (6, 6));
        for (p, &gp) in g.iter().enumerate() {
            let shown = map.iter().filter(|&&m| m as usize == p).count();
            assert_eq!(gp, shown as f32);
        }
    }
}
