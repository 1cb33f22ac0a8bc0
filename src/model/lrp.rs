//! Layer-wise Relevance Propagation's backward pass (Bach et al. 2015;
//! Montavon et al. 2019, "Layer-wise relevance propagation: an overview"),
//! with the rules, composites and canonizers of Zennit 0.5.1 (Anders et al.
//! 2021; the newest release: there is no Zennit 1.0). The relevance of the
//! output is the explained class score (its logit; for a one-output network
//! its log-odds, `±z`), as in Captum's `LRP`; it is redistributed layer by
//! layer down to the (normalized) input:
//!
//! - convolution and linear layers by their [`LrpRule`], each as Zennit's
//!   `BasicHook` computes it: modified inputs and parameters, the relevance
//!   divided by the stabilized modified output, sent back through the
//!   modified layer's transpose, and multiplied by the modified inputs;
//! - average pooling and additions (residual joins) by the Norm rule, `R_i =
//!   x_i ⊙ ∂(Σ out ⊙ R / stab(out))/∂x_i` (Zennit's `Norm`, which its ResNet
//!   canonizer puts on each block's sum);
//! - elementwise activations, batch norms that follow no convolution or
//!   linear layer, and `x·a + b` layers pass relevance through unchanged
//!   (Zennit's `Pass`);
//! - max pooling, flattening, padding, concatenation and identities pass it
//!   as their gradient does (max pooling routes it to the window's maximum);
//! - a product with a per-channel gate (squeeze-and-excitation) gives the
//!   gate none and passes the rest unchanged to the gated tensor (the gate is
//!   a weight of the signal, Arras et al. 2017's signal-take-all);
//! - a batch norm right after a convolution or linear layer (read by nothing
//!   else) is first merged into it, like Zennit's `SequentialMergeBatchNorm`
//!   canonizer.
//!
//! Softmax inside the graph has no rule and is refused, naming the node.
//!
//! Stabilizers are Zennit's: `z + ε·sign(z)` with `sign(0) = +1`.

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};

use super::deeplift::class_score_weights;
use super::layers::{forward_graph_hooked, Layer, Node};
use super::Network;
use crate::error::{Error, Result};

/// A rule for a layer with weights (convolution, linear).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrpRule {
    /// LRP-ε (Bach et al. 2015): `R_i = x_i Σ_j w_ij R_j / (z_j + ε·sign z_j)`;
    /// `ε = 0` is LRP-0 (the z-rule).
    Epsilon(f64),
    /// Generalized LRP-γ (Montavon et al. 2019; Andéol et al. 2021, as
    /// Zennit): weights `w + γ w⁺` for positive and `w + γ w⁻` for negative
    /// outputs.
    Gamma(f64),
    /// z⁺ (Montavon et al. 2017): only positive contributions, `x⁺w⁺ + x⁻w⁻`.
    ZPlus,
    /// LRP-αβ (Bach et al. 2015): `α` times the positive contributions' share
    /// minus `β` times the negative ones' (`α − β = 1`).
    AlphaBeta(f64, f64),
    /// Flat (Lapuschkin et al. 2019): relevance spread evenly over the
    /// receptive field (all inputs and weights 1, no bias).
    Flat,
    /// w² (Montavon et al. 2017): spread by squared weights.
    WSquare,
    /// z^B (Montavon et al. 2017), for the first layer: inputs bounded by the
    /// model's declared range, passed through the in-model normalization.
    ZBox,
}

/// How one node passes relevance down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeRule {
    /// A layer with weights, by this rule, stabilized by `stabilizer` (the
    /// ε rule by its own ε).
    Weighted(LrpRule),
    /// Unchanged (activations, leftover batch norms, `x·a + b`).
    Pass,
    /// The Norm rule (average pooling, additions).
    Norm,
    /// As the gradient (max pooling, reshaping, padding, concatenation).
    Gradient,
    /// A product with a per-channel gate: all to the gated input.
    Gate,
}

/// The layers of a network as LRP sees them: batch norms merged and each
/// node's rule.
#[derive(Debug, Clone)]
pub struct LrpGraph {
    /// The nodes, batch norms merged into their convolution or linear layer
    /// (the merged norm becomes an identity).
    pub nodes: Vec<Node>,
    /// Each node's rule.
    pub rules: Vec<NodeRule>,
}

/// Which rule each weighted layer gets: the first one (in graph order), the
/// convolutions and the linear layers, with overrides by layer position.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleAssignment {
    /// The first convolution or linear layer; `None` leaves it to `conv` or
    /// `linear`.
    pub first: Option<LrpRule>,
    /// Only when the first layer is a convolution (Zennit's
    /// `EpsilonGammaBox` matches convolutions only for its box rule).
    pub first_conv_only: bool,
    /// Convolutions.
    pub conv: LrpRule,
    /// Linear (fully connected) layers.
    pub linear: LrpRule,
    /// By layer position (`inspect`'s paths); wins over the rest.
    pub by_layer: HashMap<String, LrpRule>,
    /// Stabilizer of every rule but ε.
    pub stabilizer: f64,
}

/// LRP's relevance at the input and the output it explains.
#[derive(Debug, Clone)]
pub struct Relevance {
    /// `[N, C, H, W]`, in class-score units, at the (normalized) input.
    pub map: Tensor,
    /// The explained class scores, `[N]`: the relevance put on the output.
    pub scores: Vec<f64>,
}

impl LrpGraph {
    /// Merges batch norms and assigns rules.
    ///
    /// # Errors
    /// A layer with no LRP rule (softmax, random layers), naming it; a
    /// layer position in `by_layer` that is not a convolution or linear
    /// layer of the network.
    pub fn new(net: &Network, rules: &RuleAssignment) -> Result<LrpGraph> {
        let output = net.output_value();
        let mut nodes: Vec<Node> = net.nodes()[..output].to_vec();
        let mut readers = vec![0usize; nodes.len() + 1];
        for n in &nodes {
            for &v in &n.inputs {
                readers[v] += 1;
            }
        }
        readers[output] += 1;
        for i in 0..nodes.len() {
            let Layer::BatchNorm { scale, shift } = &nodes[i].layer else {
                continue;
            };
            let v = nodes[i].inputs[0];
            if v == 0 || readers[v] != 1 {
                continue;
            }
            let (scale, shift) = (scale.flatten_all()?, shift.flatten_all()?);
            let merged = match &nodes[v - 1].layer {
                Layer::Linear { weight, bias } => Layer::Linear {
                    weight: weight.broadcast_mul(&scale.unsqueeze(1)?)?,
                    bias: Some(merge_bias(bias.as_ref(), &scale, &shift)?),
                },
                Layer::Conv2d {
                    weight,
                    bias,
                    padding,
                    stride,
                    dilation,
                    groups,
                } => Layer::Conv2d {
                    weight: weight.broadcast_mul(&scale.reshape((scale.dim(0)?, 1, 1, 1))?)?,
                    bias: Some(merge_bias(bias.as_ref(), &scale, &shift)?),
                    padding: *padding,
                    stride: *stride,
                    dilation: *dilation,
                    groups: *groups,
                },
                _ => continue,
            };
            nodes[v - 1].layer = merged;
            nodes[i].layer = Layer::Identity;
        }
        let mut first_seen = false;
        let mut named = 0;
        let mut assigned = Vec::with_capacity(nodes.len());
        for n in &nodes {
            let rule = match &n.layer {
                Layer::Linear { .. } | Layer::Conv2d { .. } => {
                    let conv = matches!(n.layer, Layer::Conv2d { .. });
                    let first = !first_seen;
                    first_seen = true;
                    let by_kind = if conv { rules.conv } else { rules.linear };
                    let rule = match (first, rules.first) {
                        (true, Some(r)) if conv || !rules.first_conv_only => r,
                        _ => by_kind,
                    };
                    let rule = match rules.by_layer.get(&n.name) {
                        Some(r) => {
                            named += 1;
                            *r
                        }
                        None => rule,
                    };
                    NodeRule::Weighted(rule)
                }
                Layer::Relu
                | Layer::ModifiedRelu(_)
                | Layer::LeakyRelu(_)
                | Layer::Gelu(_)
                | Layer::Silu
                | Layer::Tanh
                | Layer::Sigmoid
                | Layer::Clip(..)
                | Layer::HardSigmoid(..)
                | Layer::HardSwish
                | Layer::BatchNorm { .. }
                | Layer::Scalar(..) => NodeRule::Pass,
                Layer::AvgPool { .. } | Layer::AdaptiveAvgPool(..) | Layer::GlobalAvgPool => {
                    NodeRule::Norm
                }
                Layer::Add => NodeRule::Norm,
                Layer::Mul => NodeRule::Gate,
                Layer::MaxPool(_)
                | Layer::Flatten
                | Layer::Identity
                | Layer::Concat
                | Layer::Pad(..) => NodeRule::Gradient,
                Layer::Softmax => {
                    return Err(Error::Invalid(format!(
                        "LRP: layer {} (softmax inside the network) has no relevance rule",
                        n.name
                    )))
                }
                Layer::Dropout(_) | Layer::RandomResizePad { .. } => {
                    return Err(Error::Invalid(format!(
                        "LRP: layer {} draws random numbers, which make relevance meaningless",
                        n.name
                    )))
                }
            };
            assigned.push(rule);
        }
        if named != rules.by_layer.len() {
            let mut missing: Vec<&str> = rules
                .by_layer
                .keys()
                .filter(|k| {
                    !nodes.iter().any(|n| {
                        &n.name == *k
                            && matches!(n.layer, Layer::Linear { .. } | Layer::Conv2d { .. })
                    })
                })
                .map(String::as_str)
                .collect();
            missing.sort_unstable();
            return Err(Error::Invalid(format!(
                "LRP: {} {} not a convolution or linear layer of the model",
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" }
            )));
        }
        Ok(LrpGraph {
            nodes,
            rules: assigned,
        })
    }
}

/// `(b − 0)·scale + shift` (Zennit's merge with the folded mean).
fn merge_bias(
    bias: Option<&Tensor>,
    scale: &Tensor,
    shift: &Tensor,
) -> candle_core::Result<Tensor> {
    match bias {
        Some(b) => (b * scale)? + shift,
        None => Ok(shift.clone()),
    }
}

impl Network {
    /// LRP relevance of each row's class score (`classes[i]`'s output; for a
    /// one-output network `z` for class 1 and `−z` for class 0) at inputs
    /// `x` (`[N, C, H, W]`, input units), by `rules`. The box rule's bounds
    /// are the model's declared input range carried through every layer
    /// before the one it applies to (the normalization included).
    ///
    /// # Errors
    /// Shapes or classes that do not fit; a randomized network; layers with
    /// no rule ([`LrpGraph::new`]).
    pub fn lrp(&self, x: &Tensor, classes: &[u32], rules: &RuleAssignment) -> Result<Relevance> {
        self.check_input(x)?;
        if self.is_randomized() {
            return Err(Error::Invalid(
                "LRP: the model has random layers, whose draws make relevance meaningless".into(),
            ));
        }
        let n = x.dim(0)?;
        let k = self.outputs();
        if classes.len() != n || classes.iter().any(|&c| c as usize >= k.max(2)) {
            return Err(Error::Invalid(format!(
                "LRP: {} classes for a batch of {n} (each below {})",
                classes.len(),
                k.max(2)
            )));
        }
        let graph = LrpGraph::new(self, rules)?;
        let normalized = |t: &Tensor| -> Result<Tensor> {
            Ok(match self.normalization() {
                Some((mean, std)) => t.broadcast_sub(mean)?.broadcast_div(std)?,
                None => t.clone(),
            })
        };
        let nodes = &graph.nodes;
        let output = nodes.len();
        let bounds = box_bounds(self, &graph, &normalized)?;
        // Every node's inputs at x.
        let mut inputs: Vec<Vec<Tensor>> = vec![Vec::new(); output];
        let out = forward_graph_hooked(
            nodes,
            &normalized(&x.detach())?,
            output,
            None,
            &mut None,
            None,
            &mut |i, ins, out| {
                inputs[i] = ins.iter().map(|t| (*t).clone()).collect();
                Ok(out)
            },
        )?;
        let top = (&out * class_score_weights(classes, k, x.device())?)?;
        let scores: Vec<f64> = top.sum(1)?.to_dtype(DType::F64)?.to_vec1()?;
        let mut rel: Vec<Option<Tensor>> = vec![None; output + 1];
        rel[output] = Some(top);
        for i in (0..output).rev() {
            let Some(r) = rel[i + 1].take() else {
                continue;
            };
            let node = &nodes[i];
            let ins: Vec<&Tensor> = inputs[i].iter().collect();
            let down = match graph.rules[i] {
                NodeRule::Pass => vec![r],
                NodeRule::Gradient => vjp(&node.layer, &ins, &r)?,
                NodeRule::Norm => {
                    let z = node.layer.apply(&ins)?;
                    let g = (r / stabilize(&z, rules.stabilizer)?)?;
                    let grads = vjp(&node.layer, &ins, &g)?;
                    ins.iter()
                        .zip(grads)
                        .map(|(x, g)| x.broadcast_mul(&g))
                        .collect::<candle_core::Result<_>>()?
                }
                NodeRule::Gate => gate(&ins, r, &node.name)?,
                NodeRule::Weighted(rule) => {
                    let b = bounds.get(&i);
                    vec![weighted(
                        &node.layer,
                        rule,
                        ins[0],
                        &r,
                        rules.stabilizer,
                        b,
                    )?]
                }
            };
            for (&v, d) in node.inputs.iter().zip(down) {
                rel[v] = Some(match rel[v].take() {
                    Some(acc) => (acc + d)?,
                    None => d,
                });
            }
        }
        let map = match rel[0].take() {
            Some(m) => m,
            None => x.zeros_like()?,
        };
        Ok(Relevance { map, scores })
    }
}

/// The bounds of the input of every node with the box rule: the images at
/// the low and high end of the declared range carried through the layers
/// before it (elementwise min and max, `[1, C, H, W]`).
fn box_bounds(
    net: &Network,
    graph: &LrpGraph,
    normalized: &dyn Fn(&Tensor) -> Result<Tensor>,
) -> Result<HashMap<usize, (Tensor, Tensor)>> {
    let boxed: Vec<usize> = (0..graph.nodes.len())
        .filter(|&i| graph.rules[i] == NodeRule::Weighted(LrpRule::ZBox))
        .collect();
    let mut out = HashMap::new();
    if boxed.is_empty() {
        return Ok(out);
    }
    let [c, h, w] = net.spec().input.shape;
    let (lo, hi) = crate::model::Classifier::input_range(net);
    let device = &candle_core::Device::Cpu;
    let ends = Tensor::cat(
        &[
            Tensor::full(lo, (1, c, h, w), device)?,
            Tensor::full(hi, (1, c, h, w), device)?,
        ],
        0,
    )?;
    let last = *boxed.iter().max().unwrap_or(&0);
    let mut seen: HashMap<usize, Tensor> = HashMap::new();
    forward_graph_hooked(
        &graph.nodes,
        &normalized(&ends)?,
        last + 1,
        None,
        &mut None,
        None,
        &mut |i, ins, out| {
            if boxed.contains(&i) {
                seen.insert(i, ins[0].clone());
            }
            Ok(out)
        },
    )?;
    for (i, t) in seen {
        let (a, b) = (t.narrow(0, 0, 1)?, t.narrow(0, 1, 1)?);
        out.insert(i, (a.minimum(&b)?, a.maximum(&b)?));
    }
    Ok(out)
}

/// Zennit's stabilizer: `z + ε·sign(z)`, `sign(0) = +1`.
fn stabilize(z: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let sign = ((z.ge(0f64)?.to_dtype(z.dtype())? * 2.0)? - 1.0)?;
    z + (sign * eps)?
}

/// `∂(Σ layer(inputs) ⊙ g)/∂inputs`, each input's.
fn vjp(layer: &Layer, inputs: &[&Tensor], g: &Tensor) -> candle_core::Result<Vec<Tensor>> {
    let vars = inputs
        .iter()
        .map(|t| Var::from_tensor(&t.detach()))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let ts: Vec<&Tensor> = vars.iter().map(|v| v.as_tensor()).collect();
    let out = layer.apply(&ts)?;
    let grads = (out * g.detach())?.sum_all()?.backward()?;
    vars.iter()
        .map(|v| match grads.get(v.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => v.as_tensor().zeros_like(),
        })
        .collect()
}

/// A per-channel gate's product: relevance to the full-size input only.
fn gate(ins: &[&Tensor], r: Tensor, name: &str) -> Result<Vec<Tensor>> {
    let (a, b) = (ins[0], ins[1]);
    if a.dims() == r.dims() && b.dims() != r.dims() {
        Ok(vec![r.clone(), b.zeros_like()?])
    } else if b.dims() == r.dims() && a.dims() != r.dims() {
        Ok(vec![a.zeros_like()?, r])
    } else {
        Err(Error::Invalid(format!(
            "LRP: layer {name} multiplies two full-size tensors {:?} and {:?}; only a product with a per-channel gate has a relevance rule",
            a.dims(),
            b.dims()
        )))
    }
}

/// `layer` with its weight and bias replaced by `f(weight)` and `g(bias)`
/// (`None` drops the bias).
fn modified(
    layer: &Layer,
    f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
    bias: BiasMod,
) -> candle_core::Result<Layer> {
    let new_bias = |b: &Option<Tensor>| -> candle_core::Result<Option<Tensor>> {
        match (b, bias) {
            (None, _) | (_, BiasMod::Zero) => Ok(None),
            (Some(b), BiasMod::Same) => Ok(Some(f(b)?)),
        }
    };
    Ok(match layer {
        Layer::Linear { weight, bias } => Layer::Linear {
            weight: f(weight)?,
            bias: new_bias(bias)?,
        },
        Layer::Conv2d {
            weight,
            bias,
            padding,
            stride,
            dilation,
            groups,
        } => Layer::Conv2d {
            weight: f(weight)?,
            bias: new_bias(bias)?,
            padding: *padding,
            stride: *stride,
            dilation: *dilation,
            groups: *groups,
        },
        other => other.clone(),
    })
}

/// What a rule's term does to the bias: the weights' modifier too, or zero
/// (Zennit's `zero_params = ["bias"]`).
#[derive(Clone, Copy)]
enum BiasMod {
    Same,
    Zero,
}

/// One term of a rule: the layer's input as modified and the modified layer.
struct Term {
    input: Tensor,
    layer: Layer,
}

impl Term {
    fn out(&self) -> candle_core::Result<Tensor> {
        self.layer.forward(&self.input)
    }

    fn back(&self, g: &Tensor) -> candle_core::Result<Tensor> {
        Ok(vjp(&self.layer, &[&self.input], g)?.remove(0))
    }
}

/// The relevance at a weighted layer's input `x` for relevance `r` at its
/// output, by `rule` (Zennit 0.5.1's hooks, term by term).
fn weighted(
    layer: &Layer,
    rule: LrpRule,
    x: &Tensor,
    r: &Tensor,
    stabilizer: f64,
    bounds: Option<&(Tensor, Tensor)>,
) -> Result<Tensor> {
    let x = x.detach();
    let pos = |t: &Tensor| t.clamp(0f64, f64::INFINITY);
    let neg = |t: &Tensor| t.clamp(f64::NEG_INFINITY, 0f64);
    let same = |t: &Tensor| Ok(t.clone());
    let term = |input: Tensor, f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>, b: BiasMod| {
        Ok::<_, candle_core::Error>(Term {
            input,
            layer: modified(layer, f, b)?,
        })
    };
    let stab = |z: &Tensor| stabilize(z, stabilizer);
    Ok(match rule {
        LrpRule::Epsilon(eps) => {
            let t = term(x.clone(), &same, BiasMod::Same)?;
            let g = (r / stabilize(&t.out()?, eps)?)?;
            (&x * t.back(&g)?)?
        }
        LrpRule::ZPlus => {
            let a = term(pos(&x)?, &pos, BiasMod::Same)?;
            let b = term(neg(&x)?, &neg, BiasMod::Zero)?;
            let g = (r / stab(&(a.out()? + b.out()?)?)?)?;
            ((&a.input * a.back(&g)?)? + (&b.input * b.back(&g)?)?)?
        }
        LrpRule::AlphaBeta(alpha, beta) => {
            let t0 = term(pos(&x)?, &pos, BiasMod::Same)?;
            let t1 = term(neg(&x)?, &neg, BiasMod::Zero)?;
            let t2 = term(pos(&x)?, &neg, BiasMod::Same)?;
            let t3 = term(neg(&x)?, &pos, BiasMod::Zero)?;
            let gp = (r / stab(&(t0.out()? + t1.out()?)?)?)?;
            let gn = (r / stab(&(t2.out()? + t3.out()?)?)?)?;
            let p = ((&t0.input * t0.back(&gp)?)? + (&t1.input * t1.back(&gp)?)?)?;
            let q = ((&t2.input * t2.back(&gn)?)? + (&t3.input * t3.back(&gn)?)?)?;
            ((p * alpha)? - (q * beta)?)?
        }
        LrpRule::Gamma(gamma) => {
            let up = |t: &Tensor| t + (pos(t)? * gamma)?;
            let down = |t: &Tensor| t + (neg(t)? * gamma)?;
            let t0 = term(pos(&x)?, &up, BiasMod::Same)?;
            let t1 = term(neg(&x)?, &down, BiasMod::Zero)?;
            let t2 = term(pos(&x)?, &down, BiasMod::Same)?;
            let t3 = term(neg(&x)?, &up, BiasMod::Zero)?;
            let z = layer.forward(&x)?;
            let on = z.gt(0f64)?.to_dtype(z.dtype())?;
            let off = z.lt(0f64)?.to_dtype(z.dtype())?;
            let gp = ((on * r)? / stab(&(t0.out()? + t1.out()?)?)?)?;
            let gn = ((off * r)? / stab(&(t2.out()? + t3.out()?)?)?)?;
            (((&t0.input * t0.back(&gp)?)? + (&t1.input * t1.back(&gp)?)?)?
                + ((&t2.input * t2.back(&gn)?)? + (&t3.input * t3.back(&gn)?)?)?)?
        }
        LrpRule::Flat | LrpRule::WSquare => {
            let ones = x.ones_like()?;
            let t = if rule == LrpRule::Flat {
                term(ones, &|w: &Tensor| w.ones_like(), BiasMod::Zero)?
            } else {
                term(ones, &|w: &Tensor| w.sqr(), BiasMod::Same)?
            };
            let g = (r / stab(&t.out()?)?)?;
            t.back(&g)?
        }
        LrpRule::ZBox => {
            let (low, high) = bounds.ok_or_else(|| {
                Error::Invalid("LRP: the box rule's bounds were not computed".into())
            })?;
            let t0 = term(x.clone(), &same, BiasMod::Same)?;
            let t1 = term(
                low.broadcast_as(x.dims())?.contiguous()?,
                &pos,
                BiasMod::Same,
            )?;
            let t2 = term(
                high.broadcast_as(x.dims())?.contiguous()?,
                &neg,
                BiasMod::Same,
            )?;
            let z = ((t0.out()? - t1.out()?)? - t2.out()?)?;
            let g = (r / stab(&z)?)?;
            (((&t0.input * t0.back(&g)?)? - (&t1.input * t1.back(&g)?)?)?
                - (&t2.input * t2.back(&g)?)?)?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ArchSpec;
    use candle_core::Device;

    /// Deterministic weights in (−1, 1) (a small LCG: the tests need no
    /// particular distribution).
    fn weights(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn net(spec: &str, shapes: &[(&str, Vec<usize>)]) -> Network {
        let spec = ArchSpec::from_json(spec, "t").unwrap();
        let tensors = shapes
            .iter()
            .enumerate()
            .map(|(i, (name, shape))| {
                let n = shape.iter().product();
                let mut v = weights(n, i as u64 + 7);
                if name.ends_with("running_var") {
                    v.iter_mut().for_each(|x| *x = x.abs() + 0.1);
                }
                let t = Tensor::from_vec(v, shape.clone(), &Device::Cpu).unwrap();
                (name.to_string(), t)
            })
            .collect();
        Network::from_tensors(spec, &tensors).unwrap().0
    }

    /// Each input's total relevance (Σ over its map).
    fn relevance_sums(r: &Relevance) -> Vec<f32> {
        r.map
            .flatten_from(1)
            .unwrap()
            .sum(1)
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// A bias-free ReLU CNN: conv → relu → max pool → conv → relu → avg pool
    /// → flatten → linear → relu → linear.
    fn cnn() -> Network {
        net(
            r#"{"version": 1, "input": {"shape": [2, 8, 8], "mean": [0.5, 0.4], "std": [0.3, 0.2]}, "layers": [
                {"op": "conv2d", "param": "c1", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": false},
                {"op": "relu"},
                {"op": "max_pool2d", "kernel_size": 2},
                {"op": "conv2d", "param": "c2", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": false},
                {"op": "relu"},
                {"op": "avg_pool2d", "kernel_size": 2},
                {"op": "flatten"},
                {"op": "linear", "param": "l1", "in_features": 16, "out_features": 8, "bias": false},
                {"op": "relu"},
                {"op": "linear", "param": "l2", "in_features": 8, "out_features": 3, "bias": false}]}"#,
            &[
                ("c1.weight", vec![4, 2, 3, 3]),
                ("c2.weight", vec![4, 4, 3, 3]),
                ("l1.weight", vec![8, 16]),
                ("l2.weight", vec![3, 8]),
            ],
        )
    }

    fn everywhere(rule: LrpRule) -> RuleAssignment {
        RuleAssignment {
            first: None,
            first_conv_only: false,
            conv: rule,
            linear: rule,
            by_layer: HashMap::new(),
            stabilizer: 1e-6,
        }
    }

    fn input(n: usize, c: usize, h: usize, seed: u64) -> Tensor {
        let v: Vec<f32> = weights(n * c * h * h, seed)
            .iter()
            .map(|w| (w + 1.0) / 2.0)
            .collect();
        Tensor::from_vec(v, (n, c, h, h), &Device::Cpu).unwrap()
    }

    #[test]
    fn the_z_rule_conserves_the_logit_on_a_bias_free_relu_network() {
        let net = cnn();
        let x = input(4, 2, 8, 3);
        let classes = [0, 1, 2, 1];
        for eps in [1e-6, 1e-9] {
            let r = net
                .lrp(&x, &classes, &everywhere(LrpRule::Epsilon(eps)))
                .unwrap();
            let sums = relevance_sums(&r);
            for (s, z) in sums.iter().zip(&r.scores) {
                assert!(z.abs() > 1e-3, "a vanishing logit proves nothing: {z}");
                assert!(
                    (*s as f64 - z).abs() <= 1e-4 * z.abs().max(1.0),
                    "ε = {eps}: relevance sums to {s}, the logit is {z}"
                );
            }
        }
        // Large ε absorbs relevance: the sum shrinks towards 0.
        let r = net
            .lrp(&x, &classes, &everywhere(LrpRule::Epsilon(10.0)))
            .unwrap();
        let sums = relevance_sums(&r);
        for (s, z) in sums.iter().zip(&r.scores) {
            assert!((*s as f64).abs() < z.abs(), "ε = 10 kept {s} of {z}");
        }
    }

    /// One linear layer 4 → 3 with bias on an un-normalized 1×2×2 input.
    fn linear() -> (Network, Vec<f32>, Vec<f32>) {
        let n = net(
            r#"{"version": 1, "input": {"shape": [1, 2, 2]}, "layers": [
                {"op": "flatten"},
                {"op": "linear", "param": "l", "in_features": 4, "out_features": 3}]}"#,
            &[("l.weight", vec![3, 4]), ("l.bias", vec![3])],
        );
        (n, weights(12, 7), weights(3, 8))
    }

    #[test]
    fn rules_on_one_linear_layer_match_their_closed_forms() {
        let (net, w, b) = linear();
        let xs = [0.9f32, 0.1, 0.6, 0.3];
        let x = Tensor::from_vec(xs.to_vec(), (1, 1, 2, 2), &Device::Cpu).unwrap();
        let c = 2usize;
        let z: f64 = (0..4).map(|i| (xs[i] * w[c * 4 + i]) as f64).sum::<f64>() + b[c] as f64;
        let run = |rule| -> Vec<f32> {
            net.lrp(&x, &[c as u32], &everywhere(rule))
                .unwrap()
                .map
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        // ε: R_i = x_i w_i · z / (z + ε sign z).
        let eps = 0.5;
        let got = run(LrpRule::Epsilon(eps));
        for i in 0..4 {
            let want = (xs[i] * w[c * 4 + i]) as f64 * z / (z + eps * z.signum());
            assert!(
                (got[i] as f64 - want).abs() < 1e-5,
                "ε {i}: {got:?} vs {want}"
            );
        }
        // Flat: the score spread evenly.
        let got = run(LrpRule::Flat);
        for g in &got {
            assert!(
                (*g as f64 - z / 4.0).abs() < 1e-5,
                "flat: {got:?} vs {}",
                z / 4.0
            );
        }
        // z⁺ on positive inputs: shares of x_i w_i⁺ (+ b⁺ in the denominator).
        let got = run(LrpRule::ZPlus);
        let pos: Vec<f64> = (0..4)
            .map(|i| (xs[i] * w[c * 4 + i].max(0.0)) as f64)
            .collect();
        let den = pos.iter().sum::<f64>() + b[c].max(0.0) as f64 + 1e-6;
        for i in 0..4 {
            let want = pos[i] * z / den;
            assert!(
                (got[i] as f64 - want).abs() < 1e-5,
                "z⁺ {i}: {got:?} vs {want}"
            );
        }
        // w²: shares of w_i² (bias squared in the denominator, as Zennit).
        let got = run(LrpRule::WSquare);
        let sq: Vec<f64> = (0..4).map(|i| (w[c * 4 + i] as f64).powi(2)).collect();
        let den = sq.iter().sum::<f64>() + (b[c] as f64).powi(2) + 1e-6;
        for i in 0..4 {
            let want = sq[i] * z / den;
            assert!(
                (got[i] as f64 - want).abs() < 1e-5,
                "w² {i}: {got:?} vs {want}"
            );
        }
    }

    #[test]
    fn box_bounds_follow_the_declared_range_and_normalization() {
        // ZBox on a linear layer after (x − 0.5)/0.25 on a [0, 1] input:
        // bounds (−2, 2); z = Σ x̂w + b − Σ(−2)w⁺ − Σ 2w⁻ − b⁺ − b⁻.
        let spec = |range: &str, mean: f64, std: f64| {
            format!(
                r#"{{"version": 1, "input": {{"shape": [1, 2, 2], "range": {range}, "mean": [{mean}], "std": [{std}]}}, "layers": [
                {{"op": "flatten"}},
                {{"op": "linear", "param": "l", "in_features": 4, "out_features": 3}}]}}"#
            )
        };
        let shapes = [("l.weight", vec![3, 4]), ("l.bias", vec![3])];
        let unit = net(&spec("[0, 1]", 0.5, 0.25), &shapes);
        let bytes = net(&spec("[0, 255]", 127.5, 63.75), &shapes);
        let xs = [0.9f32, 0.1, 0.6, 0.3];
        let x = Tensor::from_vec(xs.to_vec(), (1, 1, 2, 2), &Device::Cpu).unwrap();
        let rule = everywhere(LrpRule::ZBox);
        let a: Vec<f32> = unit
            .lrp(&x, &[1], &rule)
            .unwrap()
            .map
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let x255 = (&x * 255.0).unwrap();
        let b: Vec<f32> = bytes
            .lrp(&x255, &[1], &rule)
            .unwrap()
            .map
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (w, bias) = (weights(12, 7), weights(3, 8));
        let c = 1;
        let xn: Vec<f64> = xs.iter().map(|v| (*v as f64 - 0.5) / 0.25).collect();
        let wi = |i: usize| w[c * 4 + i] as f64;
        let bc = bias[c] as f64;
        let z: f64 = (0..4).map(|i| xn[i] * wi(i)).sum::<f64>() + bc;
        let den = z
            - (0..4)
                .map(|i| -2.0 * wi(i).max(0.0) + 2.0 * wi(i).min(0.0))
                .sum::<f64>()
            - bc.max(0.0)
            - bc.min(0.0);
        for i in 0..4 {
            let want = (xn[i] * wi(i) + 2.0 * wi(i).max(0.0) - 2.0 * wi(i).min(0.0)) * z
                / (den + 1e-6 * den.signum());
            assert!((a[i] as f64 - want).abs() < 1e-4, "{i}: {a:?} vs {want}");
            assert!(
                (a[i] - b[i]).abs() < 1e-5,
                "range changed the map: {a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn batch_norm_merges_and_residual_sums_split_by_contribution() {
        // conv → bn → relu, then a residual block: the norm is merged into
        // the convolution (same logits) and the sum gets the Norm rule.
        let n = net(
            r#"{"version": 1, "input": {"shape": [1, 6, 6]}, "layers": [
                {"op": "conv2d", "param": "c", "in_channels": 1, "out_channels": 3, "kernel_size": 3, "padding": 1, "bias": false},
                {"op": "batch_norm2d", "param": "bn", "num_features": 3},
                {"op": "relu"},
                {"op": "residual", "body": [
                    {"op": "conv2d", "param": "b", "in_channels": 3, "out_channels": 3, "kernel_size": 3, "padding": 1, "bias": false}],
                 "activation": {"op": "relu"}},
                {"op": "global_avg_pool2d"},
                {"op": "linear", "param": "l", "in_features": 3, "out_features": 2, "bias": false}]}"#,
            &[
                ("c.weight", vec![3, 1, 3, 3]),
                ("bn.weight", vec![3]),
                ("bn.bias", vec![3]),
                ("bn.running_mean", vec![3]),
                ("bn.running_var", vec![3]),
                ("b.weight", vec![3, 3, 3, 3]),
                ("l.weight", vec![2, 3]),
            ],
        );
        let g = LrpGraph::new(&n, &everywhere(LrpRule::Epsilon(0.0))).unwrap();
        assert!(
            matches!(g.nodes[1].layer, Layer::Identity),
            "{:?}",
            g.nodes[1].layer
        );
        assert_eq!(g.rules[1], NodeRule::Gradient);
        assert!(g.rules.contains(&NodeRule::Norm), "{:?}", g.rules);
        // The merged network computes what the original does.
        let x = input(2, 1, 6, 5);
        let merged = forward_graph_hooked(
            &g.nodes,
            &x,
            g.nodes.len(),
            None,
            &mut None,
            None,
            &mut |_, _, o| Ok(o),
        )
        .unwrap();
        let original = crate::model::Classifier::logits(&n, &x).unwrap();
        let d = (merged - original)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "merging moved the logits by {d}");
        // Without the norm (no biases anywhere), the z-rule conserves the
        // logit through the residual sum: the Norm rule splits it exactly.
        let n = net(
            r#"{"version": 1, "input": {"shape": [1, 6, 6]}, "layers": [
                {"op": "conv2d", "param": "c", "in_channels": 1, "out_channels": 3, "kernel_size": 3, "padding": 1, "bias": false},
                {"op": "relu"},
                {"op": "residual", "body": [
                    {"op": "conv2d", "param": "b", "in_channels": 3, "out_channels": 3, "kernel_size": 3, "padding": 1, "bias": false}],
                 "activation": {"op": "relu"}},
                {"op": "global_avg_pool2d"},
                {"op": "linear", "param": "l", "in_features": 3, "out_features": 2, "bias": false}]}"#,
            &[
                ("c.weight", vec![3, 1, 3, 3]),
                ("b.weight", vec![3, 3, 3, 3]),
                ("l.weight", vec![2, 3]),
            ],
        );
        let r = n
            .lrp(&x, &[0, 1], &everywhere(LrpRule::Epsilon(1e-9)))
            .unwrap();
        let sums = relevance_sums(&r);
        for (s, z) in sums.iter().zip(&r.scores) {
            assert!(z.abs() > 1e-3, "a vanishing logit proves nothing: {z}");
            assert!(
                (*s as f64 - z).abs() <= 1e-4 * z.abs().max(1.0),
                "{s} vs {z}"
            );
        }
    }

    #[test]
    fn layers_without_a_rule_are_refused_by_name() {
        let n = net(
            r#"{"version": 1, "input": {"shape": [1, 2, 2]}, "layers": [
                {"op": "flatten"},
                {"op": "linear", "param": "l", "in_features": 4, "out_features": 3},
                {"op": "softmax"},
                {"op": "linear", "param": "m", "in_features": 3, "out_features": 2}]}"#,
            &[
                ("l.weight", vec![3, 4]),
                ("l.bias", vec![3]),
                ("m.weight", vec![2, 3]),
                ("m.bias", vec![2]),
            ],
        );
        let e = LrpGraph::new(&n, &everywhere(LrpRule::ZPlus))
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 2") && e.contains("softmax"), "{e}");
        let mut named = everywhere(LrpRule::ZPlus);
        named.by_layer.insert("2".into(), LrpRule::Flat);
        let e = LrpGraph::new(&cnn(), &named).unwrap_err().to_string();
        assert!(e.contains("2 is not a convolution or linear layer"), "{e}");
    }
}
