//! The objective at the top of the network: per-sample values and their
//! gradients with respect to the logits, the seed of the fast engine's
//! backward pass and of the one-output wrapper's chain rule (here, below the
//! engine, so both can use it).
//! Cross-entropy uses the reference op's own log-softmax so both engines
//! round it the same way.

use super::ops::log_softmax_row;
use super::Objective;

/// Fills `values[i]` and `dlogits[i·k..]` for the first `n` rows of `logits`
/// (sample `offset + i` of the batch); rows past `n` are padding and get a
/// zero gradient. Classes were checked by the caller.
pub fn seed(
    objective: &Objective,
    offset: usize,
    n: usize,
    k: usize,
    logits: &[f32],
    values: &mut [f32],
    dlogits: &mut [f32],
) -> Result<(), String> {
    dlogits.fill(0.0);
    for i in 0..n {
        let row = &logits[i * k..(i + 1) * k];
        let out = &mut dlogits[i * k..(i + 1) * k];
        let b = offset + i;
        match objective {
            Objective::CrossEntropy(classes) => {
                let y = classes[b] as usize;
                log_softmax_row(row, out);
                values[i] = -out[y];
                for o in out.iter_mut() {
                    *o = o.exp();
                }
                out[y] -= 1.0;
            }
            Objective::Logit(classes) | Objective::ClassScore(classes) => {
                let y = classes[b] as usize;
                values[i] = row[y];
                out[y] = 1.0;
            }
            Objective::Margin(classes) => {
                let y = classes[b] as usize;
                // The first largest other logit, as the reference picks it.
                let mut best = None::<(usize, f32)>;
                for (j, &v) in row.iter().enumerate() {
                    if j != y && best.is_none_or(|(_, b)| v > b) {
                        best = Some((j, v));
                    }
                }
                match best {
                    Some((r, v)) => {
                        values[i] = row[y] - v;
                        out[y] = 1.0;
                        out[r] = -1.0;
                    }
                    None => {
                        values[i] = row[y];
                        out[y] = 1.0;
                    }
                }
            }
            Objective::Custom(loss) => {
                let (v, g) = loss(b, row);
                if g.len() != k {
                    return Err(format!(
                        "a custom loss returned {} logit gradients for {k} classes",
                        g.len()
                    ));
                }
                values[i] = v;
                out.copy_from_slice(&g);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_gradient_is_softmax_minus_one_hot() {
        let z = [1.0f32, 2.0, 0.5];
        let mut v = [0f32];
        let mut g = [0f32; 3];
        seed(&Objective::CrossEntropy(&[1]), 0, 1, 3, &z, &mut v, &mut g).unwrap();
        let e: Vec<f64> = z.iter().map(|&x| (x as f64).exp()).collect();
        let s: f64 = e.iter().sum();
        assert!((v[0] as f64 - (s.ln() - 2.0)).abs() < 1e-6);
        for j in 0..3 {
            let want = e[j] / s - if j == 1 { 1.0 } else { 0.0 };
            assert!((g[j] as f64 - want).abs() < 1e-6);
        }
    }

    #[test]
    fn margin_picks_the_runner_up_and_padding_rows_stay_zero() {
        let z = [3.0f32, 1.0, 2.5, 0.0, 0.0, 0.0];
        let mut v = [0f32; 2];
        let mut g = [7f32; 6];
        seed(&Objective::Margin(&[9, 0]), 1, 1, 3, &z, &mut v, &mut g).unwrap();
        assert_eq!(v[0], 0.5);
        assert_eq!(g, [1.0, 0.0, -1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn a_custom_loss_with_the_wrong_width_is_an_error() {
        let loss = |_: usize, _: &[f32]| (0.0, vec![1.0]);
        let mut v = [0f32];
        let mut g = [0f32; 2];
        let err = seed(
            &Objective::Custom(&loss),
            0,
            1,
            2,
            &[0.0, 1.0],
            &mut v,
            &mut g,
        );
        assert!(err.unwrap_err().contains("1 logit gradients for 2 classes"));
    }
}
