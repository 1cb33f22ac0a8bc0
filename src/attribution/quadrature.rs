//! Quadrature rules for Integrated Gradients' path integral, as Captum's
//! `approximation_parameters` builds them: Gauss–Legendre (Captum's
//! default; nodes and weights computed here, checked against tables) and
//! the Riemann sums (left, right, middle, trapezoid).

use serde::{Deserialize, Serialize};

/// How the path integral is approximated (Captum's `method` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Integration {
    /// Gauss–Legendre quadrature (`gausslegendre`).
    #[serde(rename = "gausslegendre")]
    GaussLegendre,
    /// Left Riemann sum (`riemann_left`).
    RiemannLeft,
    /// Right Riemann sum (`riemann_right`).
    RiemannRight,
    /// Midpoint rule (`riemann_middle`).
    RiemannMiddle,
    /// Trapezoid rule (`riemann_trapezoid`).
    RiemannTrapezoid,
}

impl Integration {
    /// Captum's names, as written in plans (and serialized).
    pub const CHOICES: &'static [(&'static str, Integration)] = &[
        ("gausslegendre", Integration::GaussLegendre),
        ("riemann_left", Integration::RiemannLeft),
        ("riemann_right", Integration::RiemannRight),
        ("riemann_middle", Integration::RiemannMiddle),
        ("riemann_trapezoid", Integration::RiemannTrapezoid),
    ];

    /// The Captum name.
    pub fn name(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(_, i)| *i == self)
            .map_or("", |(n, _)| n)
    }

    /// The fewest steps the rule is defined for (Captum: 2 for Riemann sums).
    pub fn min_steps(self) -> usize {
        match self {
            Integration::GaussLegendre => 1,
            _ => 2,
        }
    }

    /// `(alphas, step sizes)` for `n` steps, as Captum's
    /// `approximation_parameters` builds them.
    pub fn alphas_and_weights(self, n: usize) -> (Vec<f64>, Vec<f64>) {
        let nf = n as f64;
        let linspace = |a: f64, b: f64| -> Vec<f64> {
            if n == 1 {
                return vec![a];
            }
            (0..n)
                .map(|i| a + (b - a) * i as f64 / (nf - 1.0))
                .collect()
        };
        match self {
            Integration::GaussLegendre => {
                let (nodes, weights) = gauss_legendre(n);
                (
                    nodes.iter().map(|t| 0.5 * (1.0 + t)).collect(),
                    weights.iter().map(|w| 0.5 * w).collect(),
                )
            }
            Integration::RiemannLeft => (linspace(0.0, 1.0 - 1.0 / nf), vec![1.0 / nf; n]),
            Integration::RiemannRight => (linspace(1.0 / nf, 1.0), vec![1.0 / nf; n]),
            Integration::RiemannMiddle => (linspace(0.5 / nf, 1.0 - 0.5 / nf), vec![1.0 / nf; n]),
            Integration::RiemannTrapezoid => {
                let mut w = vec![1.0 / nf; n];
                w[0] /= 2.0;
                w[n - 1] /= 2.0;
                (linspace(0.0, 1.0), w)
            }
        }
    }
}

/// Nodes (ascending, in [−1, 1]) and weights of `n`-point Gauss–Legendre
/// quadrature, by Newton's iteration on the Legendre polynomial `P_n`
/// (three-term recurrence) from Tricomi's initial guesses; exact for
/// polynomials of degree ≤ 2n − 1.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    assert!(n >= 1, "Gauss–Legendre needs at least one node");
    // (P_n(t), P_n'(t)).
    let legendre = |t: f64| -> (f64, f64) {
        let (mut p0, mut p1) = (1.0f64, t);
        for k in 2..=n {
            let kf = k as f64;
            let p2 = ((2.0 * kf - 1.0) * t * p1 - (kf - 1.0) * p0) / kf;
            p0 = p1;
            p1 = p2;
        }
        let p = if n == 1 { t } else { p1 };
        let prev = if n == 1 { 1.0 } else { p0 };
        // P_n'(t) = n (t P_n − P_{n−1}) / (t² − 1).
        (p, n as f64 * (t * p - prev) / (t * t - 1.0))
    };
    let mut nodes = vec![0f64; n];
    let mut weights = vec![0f64; n];
    let nf = n as f64;
    for i in 0..n.div_ceil(2) {
        // Root i (descending order): Tricomi's approximation, then Newton.
        let mut t = (std::f64::consts::PI * (i as f64 + 0.75) / (nf + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (p, d) = legendre(t);
            dp = d;
            let step = p / d;
            t -= step;
            if step.abs() < 1e-16 {
                break;
            }
        }
        let (_, d) = legendre(t);
        if d.is_finite() {
            dp = d;
        }
        let w = 2.0 / ((1.0 - t * t) * dp * dp);
        // Store ascending: the largest root goes last.
        nodes[n - 1 - i] = t;
        weights[n - 1 - i] = w;
        nodes[i] = -t;
        weights[i] = w;
    }
    if n % 2 == 1 {
        nodes[n / 2] = 0.0;
    }
    (nodes, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_matches_tabulated_nodes_and_weights() {
        let (t, w) = gauss_legendre(1);
        assert_eq!((t, w), (vec![0.0], vec![2.0]));
        let (t, w) = gauss_legendre(2);
        let r = 1.0 / 3f64.sqrt();
        assert!(
            (t[0] + r).abs() < 1e-15 && (t[1] - r).abs() < 1e-15,
            "{t:?}"
        );
        assert!(w.iter().all(|&v| (v - 1.0).abs() < 1e-14), "{w:?}");
        let (t, w) = gauss_legendre(3);
        let r = 0.6f64.sqrt();
        let expect_t = [-r, 0.0, r];
        let expect_w = [5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0];
        for i in 0..3 {
            assert!((t[i] - expect_t[i]).abs() < 1e-15, "{t:?}");
            assert!((w[i] - expect_w[i]).abs() < 1e-14, "{w:?}");
        }
        // Abramowitz & Stegun, table 25.4, n = 5.
        let (t, w) = gauss_legendre(5);
        let expect_t = [
            -0.906_179_845_938_664,
            -0.538_469_310_105_683,
            0.0,
            0.538_469_310_105_683,
            0.906_179_845_938_664,
        ];
        let expect_w = [
            0.236_926_885_056_189,
            0.478_628_670_499_366,
            0.568_888_888_888_889,
            0.478_628_670_499_366,
            0.236_926_885_056_189,
        ];
        for i in 0..5 {
            assert!((t[i] - expect_t[i]).abs() < 1e-14, "{t:?}");
            assert!((w[i] - expect_w[i]).abs() < 1e-14, "{w:?}");
        }
    }

    #[test]
    fn gauss_legendre_integrates_polynomials_of_degree_2n_minus_1_exactly() {
        for n in [7usize, 20, 50, 64] {
            let (t, w) = gauss_legendre(n);
            assert!(t.windows(2).all(|p| p[0] < p[1]), "ascending");
            assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-13);
            for degree in [2 * n - 2, 2 * n - 1] {
                let q: f64 = t
                    .iter()
                    .zip(&w)
                    .map(|(x, wi)| wi * x.powi(degree as i32))
                    .sum();
                let exact = if degree % 2 == 1 {
                    0.0
                } else {
                    2.0 / (degree as f64 + 1.0)
                };
                assert!(
                    (q - exact).abs() < 1e-13,
                    "n {n} degree {degree}: {q} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn riemann_rules_match_captum() {
        let (a, w) = Integration::RiemannLeft.alphas_and_weights(4);
        assert_eq!(a, [0.0, 0.25, 0.5, 0.75]);
        assert_eq!(w, [0.25; 4]);
        let (a, _) = Integration::RiemannRight.alphas_and_weights(4);
        assert_eq!(a, [0.25, 0.5, 0.75, 1.0]);
        let (a, _) = Integration::RiemannMiddle.alphas_and_weights(4);
        assert_eq!(a, [0.125, 0.375, 0.625, 0.875]);
        let (a, w) = Integration::RiemannTrapezoid.alphas_and_weights(3);
        assert_eq!(a, [0.0, 0.5, 1.0]);
        assert_eq!(w, [1.0 / 6.0, 1.0 / 3.0, 1.0 / 6.0]);
        let (a, w) = Integration::GaussLegendre.alphas_and_weights(2);
        let r = 0.5 / 3f64.sqrt();
        assert!((a[0] - (0.5 - r)).abs() < 1e-15 && (a[1] - (0.5 + r)).abs() < 1e-15);
        assert!(w.iter().all(|v| (v - 0.5).abs() < 1e-15), "{w:?}");
    }

    #[test]
    fn names_are_the_serialized_forms() {
        for &(name, rule) in Integration::CHOICES {
            assert_eq!(rule.name(), name);
            assert_eq!(serde_json::to_value(rule).unwrap(), name);
        }
    }
}
