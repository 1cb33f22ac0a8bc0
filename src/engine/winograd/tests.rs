//! Tests of the Winograd convolution against its f64 definition, of its
//! batch independence, and (ignored) measurements of its rounding and speed
//! beside im2col.

use super::super::conv::Conv;
use super::*;

/// Deterministic values in `[lo, hi)` (splitmix64).
fn values(len: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let unit = (z >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * unit
        })
        .collect()
}

/// The convolution by its definition in f64, channel-last: per output,
/// its value and `Σ |x·w| + |b|`, the scale its rounding error is relative to.
fn direct(
    n: usize,
    (h, w): (usize, usize),
    (cin, cout): (usize, usize),
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
) -> (Vec<f64>, Vec<f64>) {
    let mut y = vec![0f64; n * h * w * cout];
    let mut scale = vec![0f64; y.len()];
    for s in 0..n {
        for oy in 0..h {
            for ox in 0..w {
                for co in 0..cout {
                    let b = bias.map_or(0.0, |b| b[co] as f64);
                    let (mut sum, mut abs) = (b, b.abs());
                    for k in 0..9 {
                        let (iy, ix) = ((oy + k / 3).wrapping_sub(1), (ox + k % 3).wrapping_sub(1));
                        if iy >= h || ix >= w {
                            continue;
                        }
                        for ci in 0..cin {
                            let p = x[((s * h + iy) * w + ix) * cin + ci] as f64
                                * weight[(co * cin + ci) * 9 + k] as f64;
                            sum += p;
                            abs += p.abs();
                        }
                    }
                    let at = ((s * h + oy) * w + ox) * cout + co;
                    y[at] = sum;
                    scale[at] = abs;
                }
            }
        }
    }
    (y, scale)
}

/// `(n, (h, w), cin, cout)`: odd and even sizes, a 1×1 input, one
/// channel, and more input channels than one product sums over. With 7
/// samples, the last two put over 256 rows (one output column) and over
/// 64 rows (600 inner) in a block but not in a sample's own: where the
/// `gemm` crate changes kernels or depth blocking.
const SHAPES: [(usize, (usize, usize), usize, usize); 9] = [
    (2, (5, 7), 3, 4),
    (1, (1, 1), 1, 1),
    (3, (6, 4), 1, 3),
    (2, (4, 4), 64, 64),
    (1, (3, 5), 64, 1),
    (2, (2, 3), 3, 64),
    (1, (1, 6), 5, 2),
    (1, (24, 24), 5, 1),
    (1, (10, 10), 600, 3),
];

#[test]
fn forward_matches_the_definition_with_bias_and_accumulation() {
    for (i, &(n, hw, cin, cout)) in SHAPES.iter().enumerate() {
        let seed = 10 * i as u64;
        let x = values(n * hw.0 * hw.1 * cin, seed, -1.0, 1.0);
        let weight = values(cout * cin * 9, seed + 1, -0.5, 0.5);
        let b = values(cout, seed + 2, -1.0, 1.0);
        let conv = Winograd::new(&weight, cout, cin, hw);
        let mut scratch = Vec::new();
        for bias in [None, Some(&b[..])] {
            let (want, scale) = direct(n, hw, (cin, cout), &x, &weight, bias);
            let before = values(want.len(), seed + 3, -2.0, 2.0);
            for accumulate in [false, true] {
                let mut y = before.clone();
                conv.forward(n, &x, &mut y, bias, accumulate, &mut scratch);
                for (j, &got) in y.iter().enumerate() {
                    let want = want[j] + if accumulate { before[j] as f64 } else { 0.0 };
                    let tol = 1e-5 * (scale[j] + 2.0);
                    assert!(
                        (got as f64 - want).abs() <= tol,
                        "shape {i}, bias {}, accumulate {accumulate}, output {j}: {got} vs {want}",
                        bias.is_some()
                    );
                }
            }
        }
    }
}

#[test]
fn transposed_gives_the_input_gradient() {
    for (i, &(n, (h, w), cin, cout)) in SHAPES.iter().enumerate() {
        let seed = 10 * i as u64 + 5;
        let x = values(n * h * w * cin, seed, -1.0, 1.0);
        let g = values(n * h * w * cout, seed + 1, -1.0, 1.0);
        let weight = values(cout * cin * 9, seed + 2, -0.5, 0.5);
        // ∂⟨conv(x), g⟩/∂x by the chain rule, in f64: every output sends
        // its g back along each tap.
        let mut want = vec![0f64; x.len()];
        for s in 0..n {
            for oy in 0..h {
                for ox in 0..w {
                    for k in 0..9 {
                        let (iy, ix) = ((oy + k / 3).wrapping_sub(1), (ox + k % 3).wrapping_sub(1));
                        if iy >= h || ix >= w {
                            continue;
                        }
                        for co in 0..cout {
                            let gy = g[((s * h + oy) * w + ox) * cout + co] as f64;
                            for ci in 0..cin {
                                want[((s * h + iy) * w + ix) * cin + ci] +=
                                    gy * weight[(co * cin + ci) * 9 + k] as f64;
                            }
                        }
                    }
                }
            }
        }
        let back = Winograd::transposed(&weight, cout, cin, (h, w));
        assert_eq!((back.cin, back.cout), (cout, cin));
        let mut dx = vec![0f32; x.len()];
        back.forward(n, &g, &mut dx, None, false, &mut Vec::new());
        let tol = 1e-5 * (cout as f64 * 9.0 * 0.5 + 1.0);
        for (j, (&got, &want)) in dx.iter().zip(&want).enumerate() {
            assert!(
                (got as f64 - want).abs() <= tol,
                "shape {i}, input {j}: {got} vs {want}"
            );
        }
        // The adjoint identity ⟨conv(x), g⟩ = ⟨x, convᵀ(g)⟩.
        let (y, _) = direct(n, (h, w), (cin, cout), &x, &weight, None);
        let lhs: f64 = y.iter().zip(&g).map(|(y, g)| y * *g as f64).sum();
        let rhs: f64 = x.iter().zip(&dx).map(|(x, d)| *x as f64 * *d as f64).sum();
        assert!(
            (lhs - rhs).abs() <= tol * x.len() as f64,
            "shape {i}: {lhs} vs {rhs}"
        );
    }
}

#[test]
fn a_sample_is_the_same_bits_in_any_batch_and_any_blocking() {
    for (i, &(_, (h, w), cin, cout)) in SHAPES.iter().enumerate() {
        let n = 7;
        let per = h * w * cin;
        let x = values(n * per, 100 + i as u64, -1.0, 1.0);
        let weight = values(cout * cin * 9, 200 + i as u64, -0.5, 0.5);
        let b = values(cout, 300 + i as u64, -1.0, 1.0);
        let conv = Winograd::new(&weight, cout, cin, (h, w));
        let mut scratch = Vec::new();
        let mut batch = vec![0f32; n * h * w * cout];
        conv.forward(n, &x, &mut batch, Some(&b), false, &mut scratch);
        let out = h * w * cout;
        for s in 0..n {
            let mut alone = vec![0f32; out];
            conv.forward(
                1,
                &x[s * per..][..per],
                &mut alone,
                Some(&b),
                false,
                &mut scratch,
            );
            let same = alone
                .iter()
                .zip(&batch[s * out..])
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "shape {i}: sample {s} alone differs from in the batch"
            );
        }
        for block in [1, 3, 5, 64] {
            let blocked = conv.clone().with_block(block);
            let mut y = vec![0f32; batch.len()];
            blocked.forward(n, &x, &mut y, Some(&b), false, &mut scratch);
            let same = y
                .iter()
                .zip(&batch)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "shape {i}: blocks of {block} tiles change the bits");
        }
    }
}

#[test]
fn four_and_eight_lanes_agree_bit_for_bit() {
    // 13 and 11 channels: whole vectors and tails at both widths, the
    // narrow one being what CPUs without AVX2 run.
    let (n, (h, w), cin, cout) = (2, (5, 3), 13, 11);
    let x = values(n * h * w * cin, 40, -1.0, 1.0);
    let conv = Winograd::new(&values(cout * cin * 9, 41, -0.5, 0.5), cout, cin, (h, w));
    let tiles = n * h.div_ceil(2) * w.div_ceil(2);
    let block = Block {
        rows: tiles,
        v_slab: tiles * cin + SLAB_PAD,
        m_slab: tiles * conv.cols + SLAB_PAD,
    };
    let mut v4 = vec![0f32; 16 * block.v_slab];
    let mut v8 = v4.clone();
    for t in 0..tiles {
        conv.input_tile::<4>(&x, t, t, block, &mut v4);
        conv.input_tile::<8>(&x, t, t, block, &mut v8);
    }
    let bits = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(bits(&v4, &v8), "input transforms differ");
    let m = values(16 * block.m_slab, 42, -1.0, 1.0);
    let b = values(cout, 43, -1.0, 1.0);
    let before = values(n * h * w * cout, 44, -1.0, 1.0);
    for accumulate in [false, true] {
        let (mut y4, mut y8) = (before.clone(), before.clone());
        for t in 0..tiles {
            conv.output_tile::<4>(&m, t, t, block, &mut y4, Some(&b), accumulate);
            conv.output_tile::<8>(&m, t, t, block, &mut y8, Some(&b), accumulate);
        }
        assert!(
            bits(&y4, &y8),
            "output transforms differ (accumulate {accumulate})"
        );
    }
}

/// Per-output error against the f64 definition: (median and max of
/// |err|/|y|, median and max of |err|/Σ|x·w|).
fn error_stats(got: &[f32], want: &[f64], scale: &[f64]) -> [f64; 4] {
    let mut rel: Vec<f64> = got
        .iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs() / w.abs())
        .collect();
    let mut norm: Vec<f64> = got
        .iter()
        .zip(want)
        .zip(scale)
        .map(|((g, w), s)| (*g as f64 - w).abs() / s)
        .collect();
    rel.sort_by(f64::total_cmp);
    norm.sort_by(f64::total_cmp);
    [
        rel[rel.len() / 2],
        rel[rel.len() - 1],
        norm[norm.len() / 2],
        norm[norm.len() - 1],
    ]
}

/// Rounding error against the f64 definition, Winograd beside im2col, for
/// Kaiming-uniform weights (bound √(6 / fan-in)) and inputs uniform in
/// [-1, 1] or rectified (half zeros). `cargo test --release --lib
/// winograd_rounding -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; prints a table"]
fn winograd_rounding_error_beside_im2col() {
    let (c, n) = (64, 2);
    let bound = (6.0 / (9 * c) as f32).sqrt();
    println!(
        "input   size   method  median|e|/|y|  max|e|/|y|  median|e|/S  max|e|/S   (S = Σ|x·w|)"
    );
    for (name, lo) in [("uniform", -1.0), ("relu", 0.0)] {
        for hw in [(32, 32), (8, 8)] {
            let x: Vec<f32> = values(n * hw.0 * hw.1 * c, 7, -1.0, 1.0)
                .iter()
                .map(|v| v.max(lo))
                .collect();
            let weight = values(c * c * 9, 8, -bound, bound);
            let (want, scale) = direct(n, hw, (c, c), &x, &weight, None);
            let mut y = vec![0f32; want.len()];
            Winograd::new(&weight, c, c, hw).forward(n, &x, &mut y, None, false, &mut Vec::new());
            let wino = error_stats(&y, &want, &scale);
            Conv::new(&weight, None, (c, c, 3, 3), 1, (1, 1), 1, hw).forward(
                n,
                &x,
                &mut y,
                &mut Vec::new(),
            );
            let im2col = error_stats(&y, &want, &scale);
            for (method, e) in [("winograd", wino), ("im2col", im2col)] {
                println!(
                    "{name:7} {:2}×{:<2}  {method:8} {:.2e}       {:.2e}    {:.2e}     {:.2e}",
                    hw.0, hw.1, e[0], e[1], e[2], e[3]
                );
            }
        }
    }
}

/// Median and least of `times`.
fn median_min(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0])
}

/// Forward time of Winograd (its default block, and blocks of 64 and 256
/// tiles) against im2col + GEMM, 10 samples, one thread: `taskset -c 0
/// cargo test --release --lib winograd_speed -- --ignored --nocapture`.
/// Runs interleave the methods, each round starting with the next one, so
/// that load from other processes and the cache a method leaves behind
/// weigh on all alike.
#[test]
#[ignore = "a measurement; prints a table"]
fn winograd_speed_beside_im2col() {
    let (n, rounds) = (10, 15);
    for (c, s) in [(64, 32), (128, 16), (256, 8), (512, 4)] {
        let hw = (s, s);
        let x = values(n * s * s * c, 1, -1.0, 1.0);
        let weight = values(c * c * 9, 2, -0.05, 0.05);
        let mut y = vec![0f32; n * s * s * c];
        let (mut cols, mut scratch) = (Vec::new(), Vec::new());
        let im2col = Conv::new(&weight, None, (c, c, 3, 3), 1, (1, 1), 1, hw);
        let default = Winograd::new(&weight, c, c, hw);
        let mut methods = vec![("default".to_string(), default.clone())];
        for block in [64, 256] {
            methods.push((format!("block {block}"), default.clone().with_block(block)));
        }
        let mut times = vec![Vec::new(); methods.len() + 1];
        for round in 0..=rounds {
            for k in 0..times.len() {
                let which = (round + k) % times.len();
                let start = std::time::Instant::now();
                match which {
                    0 => im2col.forward(n, &x, &mut y, &mut cols),
                    _ => methods[which - 1]
                        .1
                        .forward(n, &x, &mut y, None, false, &mut scratch),
                }
                // Round 0 warms caches and allocations up.
                if round > 0 {
                    times[which].push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        let gflop = 2.0 * (n * s * s * 9 * c * c) as f64 / 1e9;
        let (base, base_min) = median_min(times[0].clone());
        println!(
            "c={c} {s}×{s} ×{n}: im2col median {base:.2} ms (min {base_min:.2}, {:.1} GFLOP/s)",
            gflop / base * 1e3
        );
        for ((name, w), t) in methods.iter().zip(&times[1..]) {
            let (med, min) = median_min(t.clone());
            println!(
                "    winograd {name:9} ({:3} tiles): median {med:6.2} ms (min {min:6.2}), {:.2}× im2col",
                w.block,
                base / med
            );
        }
    }
}
