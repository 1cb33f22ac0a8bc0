//! Subgraphs that exporters emit for one PyTorch module, found before the
//! conversion so that they become one spec node: the erf form of GELU
//! (`x·0.5·(1 + erf(x/√2))`, in the orders the TorchScript and dynamo
//! exporters write it), its tanh approximation
//! (`x·0.5·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, the cube as `Pow` or as
//! two `Mul`s), SiLU as `x·sigmoid(x)`, and `MatMul` followed by the
//! `Add` of a bias (a `Linear` without `Gemm`).
//!
//! A pattern matches only when its inner values feed nothing else, so fusing
//! never drops a value some other node reads.

use std::collections::HashMap;

use super::proto::GraphProto;
use super::tensor::{constant_value, decode, Const};

/// What the conversion does with an ONNX node found in a pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fused {
    /// An inner node of a pattern: nothing to emit.
    Skip,
    /// The last node of a GELU pattern whose input is the value `x`; `tanh`
    /// for the tanh approximation, else the erf form.
    Gelu { x: String, tanh: bool },
    /// `Mul(x, Sigmoid(x))`.
    Silu { x: String },
    /// `Mul(x, HardSigmoid(x))` with alpha 1/6 and beta 1/2 (TorchScript's
    /// hard-swish before opset 14).
    HardSwish { x: String },
    /// The `Add` after a `MatMul` (node `matmul`) adding the constant `bias`.
    LinearBias { matmul: usize, bias: String },
}

/// Marker for "read by a graph output" in the consumer lists.
const GRAPH_OUTPUT: usize = usize::MAX;

struct Index<'a> {
    graph: &'a GraphProto,
    producer: HashMap<&'a str, usize>,
    consumers: HashMap<&'a str, Vec<usize>>,
    constants: HashMap<&'a str, Const>,
    /// The shapes of the initializers.
    dims: HashMap<&'a str, Vec<i64>>,
}

impl<'a> Index<'a> {
    fn new(graph: &'a GraphProto) -> Index<'a> {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut constants = HashMap::new();
        let mut dims = HashMap::new();
        for t in &graph.initializer {
            dims.insert(t.name(), t.dims.clone());
            // Patterns look at scalars and biases: weights need no second decode.
            let small = t
                .dims
                .iter()
                .try_fold(1i64, |a, &d| a.checked_mul(d))
                .is_some_and(|n| (0..=1 << 16).contains(&n));
            if let (true, Ok(c)) = (small, decode(t)) {
                constants.insert(t.name(), c);
            }
        }
        for (i, n) in graph.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.as_str(), i);
            }
            for x in &n.input {
                consumers.entry(x.as_str()).or_default().push(i);
            }
            if n.op_type() == "Constant" {
                if let (Some(o), Ok(c)) = (n.output.first(), constant_value(n)) {
                    constants.insert(o.as_str(), c);
                }
            }
        }
        for o in &graph.output {
            consumers.entry(o.name()).or_default().push(GRAPH_OUTPUT);
        }
        Index {
            graph,
            producer,
            consumers,
            constants,
            dims,
        }
    }

    fn op(&self, i: usize) -> &str {
        self.graph.node.get(i).map_or("", |n| n.op_type())
    }

    fn inputs(&self, i: usize) -> &[String] {
        self.graph.node.get(i).map_or(&[], |n| &n.input[..])
    }

    fn output(&self, i: usize) -> &str {
        self.graph
            .node
            .get(i)
            .and_then(|n| n.output.first())
            .map_or("", |s| s.as_str())
    }

    /// The one node reading `value`, if exactly one does (and no graph output).
    fn sole_consumer(&self, value: &str) -> Option<usize> {
        match self.consumers.get(value).map(|v| &v[..]) {
            Some([c]) if *c != GRAPH_OUTPUT => Some(*c),
            _ => None,
        }
    }

    /// Whether `value` is a one-element constant close to `target`.
    fn is_scalar(&self, value: &str, target: f32) -> bool {
        self.constants
            .get(value)
            .and_then(Const::scalar)
            .is_some_and(|v| (v - target).abs() <= 1e-3 * target.abs().max(1.0))
    }

    /// For a two-input node of op `op` with one input a constant close to
    /// `target`: the other input.
    fn with_scalar(&self, i: usize, op: &str, target: f32) -> Option<String> {
        if self.op(i) != op {
            return None;
        }
        match self.inputs(i) {
            [a, b] if self.is_scalar(b, target) => Some(a.clone()),
            [a, b] if op != "Div" && op != "Sub" && self.is_scalar(a, target) => Some(b.clone()),
            _ => None,
        }
    }

    /// For a `Mul` node: its input other than `known`, if `known` is one.
    fn mul_other(&self, i: usize, known: &str) -> Option<String> {
        if self.op(i) != "Mul" {
            return None;
        }
        match self.inputs(i) {
            [a, b] if a == known => Some(b.clone()),
            [a, b] if b == known => Some(a.clone()),
            _ => None,
        }
    }

    /// The GELU pattern around the `Erf` node `e`: (its input x, its nodes,
    /// the last one).
    fn gelu(&self, e: usize) -> Option<(String, Vec<usize>, usize)> {
        let erf_in = self.inputs(e).first()?;
        let p = *self.producer.get(erf_in.as_str())?;
        let x = self
            .with_scalar(p, "Div", std::f32::consts::SQRT_2)
            .or_else(|| self.with_scalar(p, "Mul", std::f32::consts::FRAC_1_SQRT_2))?;
        if self.sole_consumer(erf_in)? != e {
            return None;
        }
        let (tail, last) = self.gelu_tail(e, &x)?;
        let mut nodes = vec![p, e];
        nodes.extend(tail);
        Some((x, nodes, last))
    }

    /// The end of a GELU pattern, `x·0.5·(1 + f)` where node `e` computes
    /// `f`: its nodes after `e` and the last one.
    fn gelu_tail(&self, e: usize, x: &str) -> Option<(Vec<usize>, usize)> {
        let a = self.sole_consumer(self.output(e))?;
        if self.with_scalar(a, "Add", 1.0)? != self.output(e) {
            return None;
        }
        let m = self.sole_consumer(self.output(a))?;
        let other = self.mul_other(m, self.output(a))?;
        if other == x {
            // Mul(x, 1 + f) then Mul(·, 0.5).
            let m2 = self.sole_consumer(self.output(m))?;
            if self.with_scalar(m2, "Mul", 0.5)? == self.output(m) {
                return Some((vec![a, m, m2], m2));
            }
            return None;
        }
        if let Some(q) = self.producer.get(other.as_str()).copied() {
            // Mul(x·0.5, 1 + f).
            if self.with_scalar(q, "Mul", 0.5).as_deref() == Some(x)
                && self.sole_consumer(&other) == Some(m)
            {
                return Some((vec![a, q, m], m));
            }
        }
        if self.is_scalar(&other, 0.5) {
            // Mul(0.5, 1 + f) then Mul(x, ·).
            let m2 = self.sole_consumer(self.output(m))?;
            if self.mul_other(m2, self.output(m))? == x {
                return Some((vec![a, m, m2], m2));
            }
        }
        None
    }

    /// The tanh-approximated GELU pattern around the `Tanh` node `t`: (its
    /// input x, its nodes, the last one).
    fn gelu_tanh(&self, t: usize) -> Option<(String, Vec<usize>, usize)> {
        let u = self.inputs(t).first()?;
        let pu = *self.producer.get(u.as_str())?;
        let v = self.with_scalar(pu, "Mul", (2.0 / std::f32::consts::PI).sqrt())?;
        let pv = *self.producer.get(v.as_str())?;
        if self.op(pv) != "Add" || self.sole_consumer(u)? != t || self.sole_consumer(&v)? != pu {
            return None;
        }
        // Add(x, 0.044715·x³) in either order.
        let [p, q] = self.inputs(pv) else {
            return None;
        };
        for (x, w) in [(p, q), (q, p)] {
            let Some(pw) = self.producer.get(w.as_str()).copied() else {
                continue;
            };
            let Some(cube) = self.with_scalar(pw, "Mul", 0.044715) else {
                continue;
            };
            let Some(pc) = self.producer.get(cube.as_str()).copied() else {
                continue;
            };
            let Some(cube_nodes) = self.cube_of(pc, x) else {
                continue;
            };
            if self.sole_consumer(w) != Some(pv) || self.sole_consumer(&cube) != Some(pw) {
                continue;
            }
            let (tail, last) = self.gelu_tail(t, x)?;
            let mut nodes = cube_nodes;
            nodes.extend([pw, pv, pu, t]);
            nodes.extend(tail);
            return Some((x.clone(), nodes, last));
        }
        None
    }

    /// The nodes computing `x³` ending at node `c`: `Pow(x, 3)`, or
    /// `Mul(x, Mul(x, x))` in either order.
    fn cube_of(&self, c: usize, x: &str) -> Option<Vec<usize>> {
        if self.op(c) == "Pow" {
            return match self.inputs(c) {
                [a, e] if a == x && self.is_scalar(e, 3.0) => Some(vec![c]),
                _ => None,
            };
        }
        let sq = self.mul_other(c, x)?;
        let ps = *self.producer.get(sq.as_str())?;
        let square = self.op(ps) == "Mul" && self.inputs(ps).iter().all(|i| i == x);
        (square && self.sole_consumer(&sq) == Some(c)).then(|| vec![ps, c])
    }

    /// `Mul(x, f(x))` around the node `s` computing `f(x)`: (x, the `Mul`).
    fn silu(&self, s: usize) -> Option<(String, usize)> {
        let x = self.inputs(s).first()?.clone();
        let m = self.sole_consumer(self.output(s))?;
        (self.mul_other(m, self.output(s))? == x).then_some((x, m))
    }

    /// `Add(MatMul(a, W), b)` around the `MatMul` node `mm`: (the `Add`, b).
    fn matmul_bias(&self, mm: usize) -> Option<(usize, String)> {
        let w = self.inputs(mm).get(1)?;
        let out_features = *self.dims.get(w.as_str())?.last()?;
        let out_features = usize::try_from(out_features).ok()?;
        let a = self.sole_consumer(self.output(mm))?;
        if self.op(a) != "Add" {
            return None;
        }
        let bias = match self.inputs(a) {
            [p, q] if p == self.output(mm) => q,
            [p, q] if q == self.output(mm) => p,
            _ => return None,
        };
        let b = self.constants.get(bias.as_str())?;
        let fits = b.len() == out_features && b.dims.iter().filter(|&&d| d != 1).count() <= 1;
        fits.then(|| (a, bias.clone()))
    }
}

/// Finds the patterns of `graph`: what to do at each node index involved.
pub(crate) fn find(graph: &GraphProto) -> HashMap<usize, Fused> {
    let index = Index::new(graph);
    let mut plan = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        if plan.contains_key(&i) {
            continue;
        }
        match n.op_type() {
            "Erf" => {
                if let Some((x, nodes, last)) = index.gelu(i) {
                    if nodes.iter().any(|k| plan.contains_key(k)) {
                        continue;
                    }
                    for k in nodes {
                        plan.insert(k, Fused::Skip);
                    }
                    plan.insert(last, Fused::Gelu { x, tanh: false });
                }
            }
            "Tanh" => {
                if let Some((x, nodes, last)) = index.gelu_tanh(i) {
                    if nodes.iter().any(|k| plan.contains_key(k)) {
                        continue;
                    }
                    for k in nodes {
                        plan.insert(k, Fused::Skip);
                    }
                    plan.insert(last, Fused::Gelu { x, tanh: true });
                }
            }
            "Sigmoid" => {
                if let Some((x, m)) = index.silu(i) {
                    if !plan.contains_key(&m) {
                        plan.insert(i, Fused::Skip);
                        plan.insert(m, Fused::Silu { x });
                    }
                }
            }
            "HardSigmoid" => {
                let alpha = super::tensor::attr_float(n, "alpha").unwrap_or(0.2);
                let beta = super::tensor::attr_float(n, "beta").unwrap_or(0.5);
                let swish = (alpha - 1.0 / 6.0).abs() < 1e-6 && (beta - 0.5).abs() < 1e-6;
                if let Some((x, m)) = index.silu(i).filter(|_| swish) {
                    if !plan.contains_key(&m) {
                        plan.insert(i, Fused::Skip);
                        plan.insert(m, Fused::HardSwish { x });
                    }
                }
            }
            "MatMul" => {
                if let Some((a, bias)) = index.matmul_bias(i) {
                    if !plan.contains_key(&a) {
                        plan.insert(i, Fused::Skip);
                        plan.insert(a, Fused::LinearBias { matmul: i, bias });
                    }
                }
            }
            _ => {}
        }
    }
    plan
}
