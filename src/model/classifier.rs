//! The [`Classifier`] boundary every check talks to, and [`Network`], the
//! classifier built from a spec and weights. Input gradients go through candle
//! autograd: the input becomes a `Var`, the weights stay plain tensors, so only
//! the input path is differentiated. A network with one output is a binary
//! classifier: [`Network`] presents it through
//! [`BinaryLogits`](super::BinaryLogits) as the logits `[0, z]`.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};

use super::binary::with_classes;
use super::layers::{build_nodes, forward_graph, Layer, Node, ReluBackward, WeightSource};
use super::ops;
use super::spec::ArchSpec;
use crate::error::{Error, Result};

/// What an input gradient is the gradient of, per sample (the batch's objectives
/// are summed, so each sample's gradient is its own).
#[derive(Clone, Copy)]
pub enum Objective<'a> {
    /// Cross-entropy of the logits against these classes (one per sample).
    CrossEntropy(&'a [u32]),
    /// The logit of these classes.
    Logit(&'a [u32]),
    /// The score attributions explain for these classes
    /// ([`Classifier::class_score`]): the logit, except for a one-output
    /// model, where it is the class's log-odds `±z`.
    ClassScore(&'a [u32]),
    /// `z_y − max_{j≠y} z_j` for these classes `y`: positive while `y` wins.
    Margin(&'a [u32]),
    /// Any loss of the logits: given a sample's index and its logits row,
    /// returns the loss and its gradient with respect to the logits. The
    /// input gradient is then exact by the chain rule, with one forward pass.
    Custom(&'a LogitLoss<'a>),
}

impl std::fmt::Debug for Objective<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Objective::CrossEntropy(c) => f.debug_tuple("CrossEntropy").field(c).finish(),
            Objective::Logit(c) => f.debug_tuple("Logit").field(c).finish(),
            Objective::ClassScore(c) => f.debug_tuple("ClassScore").field(c).finish(),
            Objective::Margin(c) => f.debug_tuple("Margin").field(c).finish(),
            Objective::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// A per-sample loss of the logits: `(index, logits) → (loss, ∂loss/∂logits)`.
pub type LogitLoss<'a> = dyn Fn(usize, &[f32]) -> (f32, Vec<f32>) + Sync + 'a;

impl Objective<'_> {
    pub(crate) fn classes(&self) -> Option<&[u32]> {
        match self {
            Objective::CrossEntropy(c)
            | Objective::Logit(c)
            | Objective::ClassScore(c)
            | Objective::Margin(c) => Some(c),
            Objective::Custom(_) => None,
        }
    }
}

/// Logits, per-sample objective and input gradient at one point.
#[derive(Debug, Clone)]
pub struct InputGradient {
    /// `[N, K]` logits at the input.
    pub logits: Tensor,
    /// `[N]` objective values.
    pub value: Tensor,
    /// `∂ objective / ∂ input`, shaped like the input.
    pub grad: Tensor,
}

/// A layer's activation and the gradient of class scores with respect to it.
#[derive(Debug, Clone)]
pub struct LayerGradient {
    /// `[N, K]` logits at the input.
    pub logits: Tensor,
    /// The layer's output, `[N, ...]`.
    pub activation: Tensor,
    /// `∂ score / ∂ activation` (each sample's own class, see
    /// [`Classifier::class_score`]), shaped like it.
    pub grad: Tensor,
}

/// A batched image classifier: what attacks, attributions and stress tests need.
pub trait Classifier: Send + Sync {
    /// One input's shape `[C, H, W]`.
    fn input_shape(&self) -> [usize; 3];
    /// Number of classes.
    fn num_classes(&self) -> usize;
    /// Valid input range `(lo, hi)`.
    fn input_range(&self) -> (f32, f32);
    /// Logits `[N, K]` for a batch `[N, C, H, W]` (never probabilities).
    fn logits(&self, x: &Tensor) -> Result<Tensor>;
    /// Logits, objective and input gradient for a batch.
    fn input_grad(&self, x: &Tensor, objective: Objective) -> Result<InputGradient>;
    /// Whether the outputs depend on a random draw (Monte-Carlo dropout,
    /// random input transforms: see [`super::draw`]). Such a model's
    /// [`logits`](Classifier::logits) and [`input_grad`](Classifier::input_grad)
    /// are its draw 0 at each point.
    fn is_randomized(&self) -> bool {
        false
    }
    /// [`logits`](Classifier::logits) at draw `draw` of a randomized model
    /// (draw 0 is `logits`); the same for a deterministic one.
    fn logits_draw(&self, x: &Tensor, draw: u64) -> Result<Tensor> {
        let _ = draw;
        self.logits(x)
    }
    /// [`input_grad`](Classifier::input_grad) at draw `draw` of a randomized
    /// model, as [`logits_draw`](Classifier::logits_draw).
    fn input_grad_draw(
        &self,
        x: &Tensor,
        objective: Objective,
        draw: u64,
    ) -> Result<InputGradient> {
        let _ = draw;
        self.input_grad(x, objective)
    }
    /// The score attributions explain for `class`, from one row of
    /// [`logits`](Classifier::logits): the class's logit. A one-output model
    /// ([`BinaryLogits`](super::BinaryLogits)) explains its log-odds instead,
    /// since its class-0 logit is the constant 0. [`Objective::ClassScore`]
    /// is its gradient.
    fn class_score(&self, logits: &[f32], class: u32) -> f32 {
        logits[class as usize]
    }
    /// The network this classifier runs, when it has one (the methods that
    /// change a layer's backward pass rebuild it on the reference path).
    fn network(&self) -> Option<&Network> {
        None
    }
    /// The output of the layer at `path` (a spec position such as `3` or
    /// `5.body.1`) and the gradient of each sample's class score of
    /// `classes[i]` ([`Classifier::class_score`]) with respect to it
    /// (Grad-CAM). Classifiers without named layers refuse.
    fn layer_gradient(&self, _x: &Tensor, path: &str, _classes: &[u32]) -> Result<LayerGradient> {
        Err(Error::Invalid(format!(
            "this classifier does not expose its layers (asked for layer {path})"
        )))
    }
}

/// A network built from an [`ArchSpec`] and its weights.
#[derive(Debug, Clone)]
pub struct Network {
    spec: ArchSpec,
    nodes: Vec<Node>,
    /// The value holding the raw outputs (the last node's, or a dropped
    /// final sigmoid's input).
    output: usize,
    /// `(mean, std)` shaped `[1, C, 1, 1]`.
    normalize: Option<(Tensor, Tensor)>,
    /// Width of the last layer's output (1 for a binary classifier).
    outputs: usize,
    /// The seed of the random layers' draws ([`super::draw`]).
    draw_seed: u64,
}

impl Network {
    /// Builds the network from f32 tensors keyed by `state_dict` name.
    /// Returns the network and the names of the tensors it used.
    pub fn from_tensors(
        spec: ArchSpec,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<(Self, Vec<String>)> {
        let mut src = WeightSource::new(tensors);
        // A final sigmoid outputs p = sigmoid(z): the logit z is its input.
        let count = spec.nodes.len() - spec.drops_final_sigmoid() as usize;
        let nodes = build_nodes(&spec, count, &mut src)?;
        let output = match spec.drops_final_sigmoid() {
            true => spec
                .node_index(&spec.nodes[count].inputs[0])
                .map_or(0, |i| i + 1),
            false => count,
        };
        let used = src.used().to_vec();
        let c = spec.input.shape[0];
        let normalize = if spec.input.mean.is_some() || spec.input.std.is_some() {
            let mean = spec.input.mean.clone().unwrap_or_else(|| vec![0.0; c]);
            let std = spec.input.std.clone().unwrap_or_else(|| vec![1.0; c]);
            Some((
                Tensor::from_vec(mean, (1, c, 1, 1), &Device::Cpu)?,
                Tensor::from_vec(std, (1, c, 1, 1), &Device::Cpu)?,
            ))
        } else {
            None
        };
        let outputs = spec.outputs();
        Ok((
            Network {
                spec,
                nodes,
                output,
                normalize,
                outputs,
                draw_seed: 0,
            },
            used,
        ))
    }

    /// Keys the random layers' draws by `seed` (the audit's), so a run is
    /// reproducible and another seed draws afresh.
    pub fn set_draw_seed(&mut self, seed: u64) {
        self.draw_seed = seed;
    }

    /// The seed of the random layers' draws.
    pub fn draw_seed(&self) -> u64 {
        self.draw_seed
    }

    /// Whether some layer draws random numbers on every call (Monte-Carlo
    /// dropout, random resizing and padding).
    pub fn is_randomized(&self) -> bool {
        self.nodes
            .iter()
            .take(self.output)
            .any(|n| n.layer.is_random())
    }

    /// The random layers, as `inspect` names them.
    pub fn random_layers(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .take(self.output)
            .filter(|n| n.layer.is_random())
            .map(|n| n.name.as_str())
            .collect()
    }

    /// Each row's draw key for draw `draw` (`None` without random layers).
    fn keys(&self, x: &Tensor, draw: u64) -> candle_core::Result<Option<Vec<u64>>> {
        if !self.is_randomized() {
            return Ok(None);
        }
        super::draw::row_keys(x, self.draw_seed, draw).map(Some)
    }

    /// The spec the network was built from.
    pub fn spec(&self) -> &ArchSpec {
        &self.spec
    }

    /// Width of the output vector: the number of classes, or 1 for a binary
    /// classifier (which [`Classifier::num_classes`] counts as 2).
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// The nodes, as built (the fast engine compiles from them): all the
    /// spec's, except a one-output spec's final sigmoid.
    pub(crate) fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// A copy whose ReLUs pass gradients back by `rule` (Guided
    /// Backpropagation, deconvolution): its input gradient of a class score
    /// is that method's map. Runs on the reference path only.
    pub fn with_relu_backward(&self, rule: ReluBackward) -> Network {
        let mut out = self.clone();
        for n in &mut out.nodes {
            if matches!(n.layer, Layer::Relu | Layer::ModifiedRelu(_)) {
                n.layer = Layer::ModifiedRelu(rule);
            }
        }
        out
    }

    /// The nodes, to replace layers' weights ([`super::reinit`]).
    pub(crate) fn nodes_mut(&mut self) -> &mut [Node] {
        &mut self.nodes
    }

    /// The value holding the raw outputs (0 is the input, node `i` writes
    /// value `i + 1`).
    pub(crate) fn output_value(&self) -> usize {
        self.output
    }

    /// `(mean, std)` of the input normalization, shaped `[1, C, 1, 1]`.
    pub(crate) fn normalization(&self) -> Option<&(Tensor, Tensor)> {
        self.normalize.as_ref()
    }

    /// Refuses objectives whose classes do not fit a batch of `n` and the
    /// network's raw outputs.
    pub(crate) fn check_objective(&self, n: usize, objective: &Objective) -> Result<()> {
        let k = self.outputs;
        if let Some(classes) = objective.classes() {
            if classes.len() != n {
                return Err(Error::Invalid(format!(
                    "{} objective classes for a batch of {n}",
                    classes.len()
                )));
            }
            if let Some(&bad) = classes.iter().find(|&&c| c as usize >= k) {
                return Err(Error::Invalid(format!(
                    "objective class {bad} outside the model's {k} classes"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn check_input(&self, x: &Tensor) -> Result<()> {
        let [c, h, w] = self.spec.input.shape;
        match x.dims() {
            [_, xc, xh, xw] if [*xc, *xh, *xw] == [c, h, w] => {}
            dims => {
                return Err(Error::Invalid(format!(
                    "the model takes inputs [N, {c}, {h}, {w}], got {dims:?}"
                )))
            }
        }
        if x.dtype() != DType::F32 {
            return Err(Error::Invalid(format!(
                "the model takes f32 inputs, got {:?}",
                x.dtype()
            )));
        }
        Ok(())
    }

    /// The forward pass: normalization, then the layers. Differentiable.
    /// Returns the raw outputs: `[N, 1]` (z) for a binary classifier.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_draw(x, 0)
    }

    /// [`Network::forward`] at draw `draw` of the random layers (the same
    /// for a network without them).
    pub fn forward_draw(&self, x: &Tensor, draw: u64) -> candle_core::Result<Tensor> {
        let keys = self.keys(x, draw)?;
        let x = match &self.normalize {
            Some((mean, std)) => x.broadcast_sub(mean)?.broadcast_div(std)?,
            None => x.clone(),
        };
        forward_graph(
            &self.nodes,
            &x,
            self.output,
            None,
            &mut None,
            keys.as_deref(),
        )
    }

    /// An error listing the model's layers unless `path` names one.
    pub(crate) fn check_layer_path(&self, path: &str) -> Result<()> {
        self.node_of(path).map(|_| ())
    }

    /// The index of the built node at `path`, or an error listing them.
    pub(crate) fn node_of(&self, path: &str) -> Result<usize> {
        if let Some(i) = self.spec.node_index(path).filter(|&i| i < self.nodes.len()) {
            return Ok(i);
        }
        let known: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        Err(Error::Invalid(format!(
            "no layer at position `{path}` (the model's layers: {})",
            known.join(", ")
        )))
    }

    /// The forward pass with the output of the layer at `path` (a spec
    /// position, as `inspect` lists them) captured as a [`Var`]: returns the
    /// raw outputs and that variable, so `backward()` from the logits yields the
    /// gradient with respect to the activation. Nothing before the layer is
    /// differentiated. An unknown path is an error naming it.
    pub fn forward_capture(&self, x: &Tensor, path: &str) -> Result<(Tensor, Var)> {
        self.check_input(x)?;
        let node = self.node_of(path)?;
        let keys = self.keys(x, 0)?;
        let x = match &self.normalize {
            Some((mean, std)) => x.broadcast_sub(mean)?.broadcast_div(std)?,
            None => x.clone(),
        };
        let mut captured = None;
        let logits = forward_graph(
            &self.nodes,
            &x,
            self.output,
            Some(node),
            &mut captured,
            keys.as_deref(),
        )?;
        let var = captured.ok_or_else(|| {
            Error::Invalid(format!(
                "layer `{path}` was not reached by the forward pass"
            ))
        })?;
        Ok((logits, var))
    }
}

fn one_hot(classes: &[u32], k: usize) -> Result<Tensor> {
    let mut v = vec![0f32; classes.len() * k];
    for (i, &c) in classes.iter().enumerate() {
        v[i * k + c as usize] = 1.0;
    }
    Ok(Tensor::from_vec(v, (classes.len(), k), &Device::Cpu)?)
}

impl Classifier for Network {
    fn input_shape(&self) -> [usize; 3] {
        self.spec.input.shape
    }

    fn network(&self) -> Option<&Network> {
        Some(self)
    }

    fn num_classes(&self) -> usize {
        with_classes(Outputs(self), |c| c.num_classes())
    }

    fn input_range(&self) -> (f32, f32) {
        (self.spec.input.range[0], self.spec.input.range[1])
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        with_classes(Outputs(self), |c| c.logits(x))
    }

    fn input_grad(&self, x: &Tensor, objective: Objective) -> Result<InputGradient> {
        with_classes(Outputs(self), |c| c.input_grad(x, objective))
    }

    fn is_randomized(&self) -> bool {
        Network::is_randomized(self)
    }

    fn logits_draw(&self, x: &Tensor, draw: u64) -> Result<Tensor> {
        with_classes(Outputs(self), |c| c.logits_draw(x, draw))
    }

    fn input_grad_draw(
        &self,
        x: &Tensor,
        objective: Objective,
        draw: u64,
    ) -> Result<InputGradient> {
        with_classes(Outputs(self), |c| c.input_grad_draw(x, objective, draw))
    }

    fn class_score(&self, logits: &[f32], class: u32) -> f32 {
        with_classes(Outputs(self), |c| c.class_score(logits, class))
    }

    fn layer_gradient(&self, x: &Tensor, path: &str, classes: &[u32]) -> Result<LayerGradient> {
        with_classes(Outputs(self), |c| c.layer_gradient(x, path, classes))
    }
}

/// A network's raw outputs as a classifier: one "class" per output, so a
/// binary classifier has one here. [`Network`] wraps it in
/// [`BinaryLogits`](super::BinaryLogits) when it has a single output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outputs<'a>(pub(crate) &'a Network);

impl Classifier for Outputs<'_> {
    fn input_shape(&self) -> [usize; 3] {
        self.0.input_shape()
    }

    fn num_classes(&self) -> usize {
        self.0.outputs
    }

    fn input_range(&self) -> (f32, f32) {
        self.0.input_range()
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.logits_draw(x, 0)
    }

    fn input_grad(&self, x: &Tensor, objective: Objective) -> Result<InputGradient> {
        self.input_grad_draw(x, objective, 0)
    }

    fn is_randomized(&self) -> bool {
        self.0.is_randomized()
    }

    fn logits_draw(&self, x: &Tensor, draw: u64) -> Result<Tensor> {
        self.0.check_input(x)?;
        Ok(self.0.forward_draw(x, draw)?)
    }

    fn input_grad_draw(
        &self,
        x: &Tensor,
        objective: Objective,
        draw: u64,
    ) -> Result<InputGradient> {
        self.0.check_input(x)?;
        let n = x.dim(0)?;
        let k = self.0.outputs;
        self.0.check_objective(n, &objective)?;
        let var = Var::from_tensor(x)?;
        let logits = self.0.forward_draw(var.as_tensor(), draw)?;
        let value = match objective {
            Objective::CrossEntropy(labels) => ops::cross_entropy(&logits, labels)?,
            Objective::Logit(c) | Objective::ClassScore(c) => (&logits * one_hot(c, k)?)?.sum(1)?,
            Objective::Margin(y) => {
                // The runner-up is chosen on detached logits; the max's gradient
                // then flows to that class only, as torch.max's does.
                let z: Vec<Vec<f32>> = logits.detach().to_vec2()?;
                let runner_up: Vec<u32> = z
                    .iter()
                    .zip(y)
                    .map(|(row, &yi)| {
                        let mut best = None::<(usize, f32)>;
                        for (j, &v) in row.iter().enumerate() {
                            if j != yi as usize && best.is_none_or(|(_, b)| v > b) {
                                best = Some((j, v));
                            }
                        }
                        best.map_or(0, |(j, _)| j as u32)
                    })
                    .collect();
                let weights = (one_hot(y, k)? - one_hot(&runner_up, k)?)?;
                (&logits * weights)?.sum(1)?
            }
            Objective::Custom(loss) => {
                // Backpropagate Σ (∂loss/∂z) ⊙ z: its input gradient is the loss's.
                let z: Vec<Vec<f32>> = logits.detach().to_vec2()?;
                let mut values = Vec::with_capacity(n);
                let mut weights = Vec::with_capacity(n * k);
                for (i, row) in z.iter().enumerate() {
                    let (v, g) = loss(i, row);
                    if g.len() != k {
                        return Err(Error::Invalid(format!(
                            "a custom loss returned {} logit gradients for {k} classes",
                            g.len()
                        )));
                    }
                    values.push(v);
                    weights.extend(g);
                }
                let weights = Tensor::from_vec(weights, (n, k), &Device::Cpu)?;
                let linear = (&logits * weights)?.sum(1)?;
                let grads = linear.sum_all()?.backward()?;
                let grad = match grads.get(var.as_tensor()) {
                    Some(g) => g.clone(),
                    None => x.zeros_like()?,
                };
                return Ok(InputGradient {
                    logits: logits.detach(),
                    value: Tensor::from_vec(values, n, &Device::Cpu)?,
                    grad,
                });
            }
        };
        let grads = value.sum_all()?.backward()?;
        let grad = match grads.get(var.as_tensor()) {
            Some(g) => g.clone(),
            None => x.zeros_like()?,
        };
        Ok(InputGradient {
            logits: logits.detach(),
            value: value.detach(),
            grad,
        })
    }

    fn layer_gradient(&self, x: &Tensor, path: &str, classes: &[u32]) -> Result<LayerGradient> {
        let n = x.dim(0)?;
        let k = self.0.outputs;
        if classes.len() != n || classes.iter().any(|&c| c as usize >= k) {
            return Err(Error::Invalid(format!(
                "layer gradient: {} classes for a batch of {n} (each below {k})",
                classes.len()
            )));
        }
        let (logits, var) = self.0.forward_capture(x, path)?;
        let value = (&logits * one_hot(classes, k)?)?.sum_all()?;
        let grads = value.backward()?;
        let grad = match grads.get(var.as_tensor()) {
            Some(g) => g.clone(),
            None => var.as_tensor().zeros_like()?,
        };
        Ok(LayerGradient {
            logits: logits.detach(),
            activation: var.as_tensor().detach(),
            grad,
        })
    }
}
