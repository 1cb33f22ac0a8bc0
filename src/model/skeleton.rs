//! Guessing a spec from tensor names and shapes, for a model that came without
//! one: a starting point the user edits, never used to load silently.
//!
//! A safetensors file keeps no module order (PyTorch's writer stores tensors
//! by dtype, then alphabetically), so the order is rebuilt from the names:
//! the names form a tree (`layer1.0.conv1` → `layer1` / `0` / `conv1`), and
//! at each level numbered children (`nn.Sequential` indices) go in numeric
//! order (`2` before `10`), while named ones (`conv1`, `bn1`, `features`,
//! `classifier`) are chained by their shapes: a child whose input no
//! sibling produces comes first (a convolution before a linear layer), then
//! each next one reads what the last one wrote (a batch norm of that width
//! right after a convolution or linear layer, then a convolution, then a
//! linear layer, one reading the width as it is before one that needs a
//! flatten), ties broken by the numbers in the names.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::load::TensorInfo;
use super::spec::{ArchSpec, InputSpec, LayerSpec, Size2};

/// Splits a name into text and number runs so that `layer.10` sorts after `layer.2`.
fn natural_key(s: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut num: Option<u64> = None;
    for ch in s.chars() {
        if let Some(d) = ch.to_digit(10) {
            num = Some(num.unwrap_or(0).saturating_mul(10).saturating_add(d as u64));
        } else {
            if let Some(n) = num.take() {
                out.push((std::mem::take(&mut text), n));
            }
            text.push(ch);
        }
    }
    out.push((text, num.unwrap_or(0)));
    out
}

fn natural_cmp(a: &str, b: &str) -> Ordering {
    natural_key(a).cmp(&natural_key(b)).then_with(|| a.cmp(b))
}

/// One layer with weights, as the tensors under one prefix show it.
#[derive(Debug, Clone)]
enum Unit {
    Conv {
        prefix: String,
        inp: usize,
        out: usize,
        kh: usize,
        kw: usize,
        bias: bool,
    },
    Linear {
        prefix: String,
        inp: usize,
        out: usize,
        bias: bool,
    },
    BatchNorm {
        prefix: String,
        features: usize,
        affine: bool,
    },
}

impl Unit {
    /// Channels or features read.
    fn input(&self) -> usize {
        match self {
            Unit::Conv { inp, .. } | Unit::Linear { inp, .. } => *inp,
            Unit::BatchNorm { features, .. } => *features,
        }
    }

    /// Channels or features written.
    fn output(&self) -> usize {
        match self {
            Unit::Conv { out, .. } | Unit::Linear { out, .. } => *out,
            Unit::BatchNorm { features, .. } => *features,
        }
    }

    /// Preference when several could come next after `prev`: the batch
    /// norm of a layer follows it directly (but not another batch norm);
    /// convolutions come before linear layers.
    fn rank(&self, prev: &Unit) -> u8 {
        match (self, prev) {
            (Unit::BatchNorm { .. }, Unit::BatchNorm { .. }) => 3,
            (Unit::BatchNorm { .. }, _) => 0,
            (Unit::Conv { .. }, _) => 1,
            (Unit::Linear { .. }, _) => 2,
        }
    }

    /// Preference for a network's first layer: a convolution, else a linear
    /// layer (an MLP), a batch norm last.
    fn first_rank(&self) -> u8 {
        match self {
            Unit::Conv { .. } => 0,
            Unit::Linear { .. } => 1,
            Unit::BatchNorm { .. } => 2,
        }
    }
}

/// What flows between layers: `width` channels of a feature map (`spatial`)
/// or `width` features of a vector.
#[derive(Debug, Clone, Copy)]
struct Flow {
    width: usize,
    spatial: bool,
}

impl Flow {
    fn after(self, unit: &Unit) -> Flow {
        match unit {
            Unit::Conv { out, .. } => Flow {
                width: *out,
                spatial: true,
            },
            Unit::Linear { out, .. } => Flow {
                width: *out,
                spatial: false,
            },
            Unit::BatchNorm { .. } => self,
        }
    }

    /// Whether `unit` reads exactly this width (no flatten in between).
    fn exact(self, unit: &Unit) -> bool {
        unit.input() == self.width
    }

    /// Whether `unit` can read this flow: a feature map feeds a linear layer
    /// through a flatten or a global pool (a multiple of the channels).
    fn feeds(self, unit: &Unit) -> bool {
        match unit {
            Unit::BatchNorm { features, .. } => *features == self.width,
            Unit::Conv { inp, .. } => self.spatial && *inp == self.width,
            Unit::Linear { inp, .. } => {
                if self.spatial {
                    self.width > 0 && *inp % self.width == 0
                } else {
                    *inp == self.width
                }
            }
        }
    }
}

/// The layers with weights in the file, one per prefix.
fn units(tensors: &[TensorInfo]) -> Vec<Unit> {
    let mut groups: BTreeMap<&str, Vec<&TensorInfo>> = BTreeMap::new();
    for t in tensors {
        if let Some((prefix, _)) = t.name.rsplit_once('.') {
            groups.entry(prefix).or_default().push(t);
        }
    }
    let mut out = Vec::new();
    for (prefix, group) in groups {
        let find = |leaf: &str| {
            group
                .iter()
                .find(|t| t.name.rsplit_once('.').map(|(_, l)| l) == Some(leaf))
                .copied()
        };
        let weight = find("weight");
        let bias = find("bias").is_some();
        let prefix = prefix.to_string();
        if let Some(mean) = find("running_mean") {
            out.push(Unit::BatchNorm {
                prefix,
                features: mean.shape.first().copied().unwrap_or(0),
                affine: weight.is_some(),
            });
            continue;
        }
        match weight.map(|w| w.shape.as_slice()) {
            Some([o, i, kh, kw]) => out.push(Unit::Conv {
                prefix,
                inp: *i,
                out: *o,
                kh: *kh,
                kw: *kw,
                bias,
            }),
            Some([o, i]) => out.push(Unit::Linear {
                prefix,
                inp: *i,
                out: *o,
                bias,
            }),
            _ => {}
        }
    }
    out
}

/// The name tree: each node may be a layer itself and has named children.
#[derive(Default)]
struct Tree {
    unit: Option<usize>,
    children: BTreeMap<String, Tree>,
}

impl Tree {
    fn insert(&mut self, path: &str, index: usize) {
        let mut node = self;
        for part in path.split('.') {
            node = node.children.entry(part.to_string()).or_default();
        }
        node.unit = Some(index);
    }

    /// The layers under this node, in the order guessed for them.
    fn order(&self, units: &[Unit]) -> Vec<usize> {
        let mut out: Vec<usize> = self.unit.into_iter().collect();
        let mut kids: Vec<(&String, Vec<usize>)> = self
            .children
            .iter()
            .map(|(name, child)| (name, child.order(units)))
            .filter(|(_, seq)| !seq.is_empty())
            .collect();
        kids.sort_by(|a, b| natural_cmp(a.0, b.0));
        if kids.iter().all(|(name, _)| name.parse::<u64>().is_ok()) {
            out.extend(kids.into_iter().flat_map(|(_, seq)| seq));
        } else {
            out.extend(chain(kids.into_iter().map(|(_, seq)| seq).collect(), units));
        }
        out
    }
}

/// Orders sibling groups (each a sequence of layers, in natural name order
/// on entry) so that each reads what the one before it wrote.
fn chain(mut groups: Vec<Vec<usize>>, units: &[Unit]) -> Vec<usize> {
    let first = |g: &Vec<usize>| &units[g[0]];
    let last = |g: &Vec<usize>| &units[*g.last().expect("non-empty")];
    let mut out = Vec::new();
    let mut flow: Option<(Flow, usize)> = None;
    while !groups.is_empty() {
        let pick = match flow {
            Some((f, prev)) => groups
                .iter()
                .enumerate()
                .filter(|(_, g)| f.feeds(first(g)))
                .min_by_key(|(i, g)| (first(g).rank(&units[prev]), !f.exact(first(g)), *i))
                .map(|(i, _)| i),
            None => {
                // A source: its input is no sibling's output (the image's channels).
                let produced: Vec<usize> = groups.iter().map(|g| last(g).output()).collect();
                groups
                    .iter()
                    .enumerate()
                    .filter(|(_, g)| !produced.contains(&first(g).input()))
                    .min_by_key(|(i, g)| (first(g).first_rank(), *i))
                    .map(|(i, _)| i)
            }
        };
        // Nothing connects: the next in name order, convolutions first
        // (at the start) or linear layers last.
        let pick = pick.unwrap_or_else(|| {
            groups
                .iter()
                .enumerate()
                .min_by_key(|(i, g)| {
                    let u = first(g);
                    let rank = match flow {
                        None => u.first_rank(),
                        Some(_) => u8::from(matches!(u, Unit::Linear { .. })),
                    };
                    (rank, *i)
                })
                .map(|(i, _)| i)
                .expect("non-empty")
        });
        let group = groups.remove(pick);
        let mut f = flow.map_or(
            Flow {
                width: first(&group).input(),
                spatial: !matches!(first(&group), Unit::Linear { .. }),
            },
            |(f, _)| f,
        );
        for &u in &group {
            f = f.after(&units[u]);
        }
        flow = Some((f, *group.last().expect("non-empty")));
        out.extend(group);
    }
    out
}

/// A spec guessed from `tensors`: conv2d for 4-D weights, linear for 2-D,
/// batch norm where running statistics exist (2d after a convolution, 1d
/// after a linear layer), a ReLU after each conv or linear (after its batch
/// norm when one follows) but the last, and before the first linear layer a
/// global average pool when it reads as many features as the last conv has
/// channels, else a flatten. Layers go in the order the names suggest (see the module
/// docs); the input is `[C, 28, 28]`, `[3, 32, 32]` for three channels, or a
/// square image for an MLP.
pub fn skeleton_spec(tensors: &[TensorInfo]) -> ArchSpec {
    let units = units(tensors);
    let mut tree = Tree::default();
    for (i, u) in units.iter().enumerate() {
        let prefix = match u {
            Unit::Conv { prefix, .. }
            | Unit::Linear { prefix, .. }
            | Unit::BatchNorm { prefix, .. } => prefix,
        };
        tree.insert(prefix, i);
    }
    let order = tree.order(&units);
    let any_conv = units.iter().any(|u| matches!(u, Unit::Conv { .. }));

    let mut layers = Vec::new();
    let mut input = [1usize, 28, 28];
    let mut flattened = false;
    if !any_conv && !order.is_empty() {
        // An MLP: flatten first, and guess a square single-channel image.
        let width = units[order[0]].input();
        let side = (width as f64).sqrt().round() as usize;
        input = if side.checked_mul(side) == Some(width) {
            [1, side, side]
        } else {
            [1, 1, width]
        };
        layers.push(LayerSpec::Flatten { start_dim: 1 });
        flattened = true;
    }
    // Whether the last layer with weights was a conv (a batch norm after
    // it is 2d), and the last conv's channels.
    let mut after_conv: Option<bool> = None;
    let mut channels: Option<usize> = None;
    for (pos, &i) in order.iter().enumerate() {
        match &units[i] {
            Unit::BatchNorm {
                prefix,
                features,
                affine,
            } => {
                let two_d = after_conv.unwrap_or(any_conv && !flattened);
                let bn = if two_d {
                    LayerSpec::BatchNorm2d {
                        param: prefix.clone(),
                        num_features: *features,
                        eps: 1e-5,
                        affine: *affine,
                    }
                } else {
                    LayerSpec::BatchNorm1d {
                        param: prefix.clone(),
                        num_features: *features,
                        eps: 1e-5,
                        affine: *affine,
                    }
                };
                // conv → ReLU becomes conv → batch norm → ReLU.
                let relu_after_weights = matches!(layers.last(), Some(LayerSpec::Relu))
                    && matches!(
                        layers.len().checked_sub(2).map(|j| &layers[j]),
                        Some(LayerSpec::Conv2d { .. } | LayerSpec::Linear { .. })
                    );
                if relu_after_weights {
                    layers.pop();
                    layers.push(bn);
                    layers.push(LayerSpec::Relu);
                } else {
                    layers.push(bn);
                }
            }
            Unit::Conv {
                prefix,
                inp,
                out,
                kh,
                kw,
                bias,
            } => {
                if pos == 0 {
                    input = if *inp == 3 {
                        [3, 32, 32]
                    } else {
                        [*inp, 28, 28]
                    };
                }
                after_conv = Some(true);
                channels = Some(*out);
                layers.push(LayerSpec::Conv2d {
                    param: prefix.clone(),
                    in_channels: *inp,
                    out_channels: *out,
                    kernel_size: Size2 { h: *kh, w: *kw },
                    stride: Size2::square(1),
                    padding: Size2 {
                        h: kh / 2,
                        w: kw / 2,
                    },
                    dilation: Size2::square(1),
                    groups: 1,
                    bias: *bias,
                });
                layers.push(LayerSpec::Relu);
            }
            Unit::Linear {
                prefix,
                inp,
                out,
                bias,
            } => {
                if !flattened {
                    // As many features as channels: a global pool (ResNet's
                    // head); otherwise a flatten (the user adds the pooling).
                    layers.push(if channels == Some(*inp) {
                        LayerSpec::GlobalAvgPool2d
                    } else {
                        LayerSpec::Flatten { start_dim: 1 }
                    });
                    flattened = true;
                }
                after_conv = Some(false);
                layers.push(LayerSpec::Linear {
                    param: prefix.clone(),
                    in_features: *inp,
                    out_features: *out,
                    bias: *bias,
                });
                layers.push(LayerSpec::Relu);
            }
        }
    }
    if matches!(layers.last(), Some(LayerSpec::Relu)) {
        layers.pop();
    }
    ArchSpec::from_layers(
        InputSpec {
            shape: input,
            range: [0.0, 1.0],
            mean: None,
            std: None,
        },
        layers,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, shape: &[usize]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            shape: shape.to_vec(),
            dtype: "F32".into(),
        }
    }

    /// A conv's or linear's weight and bias.
    fn layer(name: &str, shape: &[usize]) -> Vec<TensorInfo> {
        vec![
            t(&format!("{name}.weight"), shape),
            t(&format!("{name}.bias"), &shape[..1]),
        ]
    }

    /// A batch norm's tensors.
    fn bn(name: &str, n: usize) -> Vec<TensorInfo> {
        ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .map(|leaf| t(&format!("{name}.{leaf}"), &[n]))
            .chain([t(&format!("{name}.num_batches_tracked"), &[])])
            .collect()
    }

    /// Sorted by name, as PyTorch's safetensors writer stores them.
    fn file(parts: Vec<Vec<TensorInfo>>) -> Vec<TensorInfo> {
        let mut all: Vec<TensorInfo> = parts.into_iter().flatten().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    fn params(spec: &ArchSpec) -> Vec<&str> {
        spec.nodes
            .iter()
            .filter_map(|n| n.op.param_prefix())
            .collect()
    }

    fn ops(spec: &ArchSpec) -> Vec<&str> {
        spec.nodes.iter().map(|n| n.op.op_name()).collect()
    }

    #[test]
    fn guesses_an_mlp_in_natural_order() {
        let spec = skeleton_spec(&file(vec![
            layer("net.10", &[10, 32]),
            layer("net.2", &[32, 784]),
        ]));
        assert_eq!(spec.input.shape, [1, 28, 28]);
        assert_eq!(ops(&spec), ["flatten", "linear", "relu", "linear"]);
        assert_eq!(params(&spec), ["net.2", "net.10"]);
    }

    #[test]
    fn a_batch_norm_follows_its_conv_and_precedes_the_relu() {
        let spec = skeleton_spec(&[
            t("conv.weight", &[8, 3, 3, 3]),
            t("conv.bias", &[8]),
            t("convbn.running_mean", &[8]),
            t("convbn.running_var", &[8]),
            t("head.weight", &[4, 8]),
        ]);
        assert_eq!(spec.input.shape, [3, 32, 32]);
        assert_eq!(
            ops(&spec),
            [
                "conv2d",
                "batch_norm2d",
                "relu",
                "global_avg_pool2d",
                "linear"
            ]
        );
        assert!(matches!(
            spec.nodes[1].op,
            LayerSpec::BatchNorm2d {
                num_features: 8,
                affine: false,
                ..
            }
        ));
    }

    #[test]
    fn features_before_classifier_and_indices_in_numeric_order() {
        // torchvision-style names: alphabetically `classifier` < `features`
        // and `features.10` < `features.3`.
        let spec = skeleton_spec(&file(vec![
            layer("features.0", &[16, 3, 3, 3]),
            bn("features.1", 16),
            layer("features.3", &[32, 16, 3, 3]),
            bn("features.4", 32),
            layer("features.10", &[64, 32, 3, 3]),
            bn("features.11", 64),
            layer("classifier.1", &[128, 64 * 4 * 4]),
            layer("classifier.4", &[10, 128]),
        ]));
        assert_eq!(
            params(&spec),
            [
                "features.0",
                "features.1",
                "features.3",
                "features.4",
                "features.10",
                "features.11",
                "classifier.1",
                "classifier.4"
            ]
        );
        assert_eq!(
            ops(&spec),
            [
                "conv2d",
                "batch_norm2d",
                "relu",
                "conv2d",
                "batch_norm2d",
                "relu",
                "conv2d",
                "batch_norm2d",
                "relu",
                "flatten",
                "linear",
                "relu",
                "linear"
            ]
        );
    }

    #[test]
    fn named_layers_are_chained_by_their_shapes() {
        // A ResNet's names: `bn1` < `conv1` < `fc` < `layer1` alphabetically.
        let spec = skeleton_spec(&file(vec![
            layer("conv1", &[16, 3, 3, 3]),
            bn("bn1", 16),
            layer("layer1.0.conv1", &[16, 16, 3, 3]),
            bn("layer1.0.bn1", 16),
            layer("layer1.0.conv2", &[16, 16, 3, 3]),
            bn("layer1.0.bn2", 16),
            layer("layer2.0.conv1", &[32, 16, 3, 3]),
            bn("layer2.0.bn1", 32),
            layer("layer2.0.conv2", &[32, 32, 3, 3]),
            bn("layer2.0.bn2", 32),
            layer("layer2.0.downsample.0", &[32, 16, 1, 1]),
            bn("layer2.0.downsample.1", 32),
            layer("fc", &[10, 32]),
        ]));
        assert_eq!(
            params(&spec),
            [
                "conv1",
                "bn1",
                "layer1.0.conv1",
                "layer1.0.bn1",
                "layer1.0.conv2",
                "layer1.0.bn2",
                "layer2.0.conv1",
                "layer2.0.bn1",
                "layer2.0.conv2",
                "layer2.0.bn2",
                "layer2.0.downsample.0",
                "layer2.0.downsample.1",
                "fc"
            ]
        );
        assert!(spec
            .nodes
            .iter()
            .all(|n| !matches!(n.op, LayerSpec::BatchNorm1d { .. })));
        // `fc` reads the 32 channels: a global pool.
        let n = spec.nodes.len();
        assert_eq!(spec.nodes[n - 2].op, LayerSpec::GlobalAvgPool2d);
    }

    #[test]
    fn batch_norm_after_a_linear_layer_is_1d() {
        // The new user's model: `block` < `fc` < `head` < `stem` alphabetically.
        let spec = skeleton_spec(&file(vec![
            layer("stem.0", &[16, 3, 3, 3]),
            bn("stem.1", 16),
            layer("block.0", &[16, 16, 3, 3]),
            bn("block.1", 16),
            layer("head.0", &[32, 16]),
            bn("head.1", 32),
            layer("fc", &[4, 32]),
        ]));
        assert_eq!(
            params(&spec),
            ["stem.0", "stem.1", "block.0", "block.1", "head.0", "head.1", "fc"]
        );
        assert_eq!(
            ops(&spec),
            [
                "conv2d",
                "batch_norm2d",
                "relu",
                "conv2d",
                "batch_norm2d",
                "relu",
                "global_avg_pool2d",
                "linear",
                "batch_norm1d",
                "relu",
                "linear"
            ]
        );
        assert_eq!(spec.input.shape, [3, 32, 32]);
        // A chain whose widths agree: the guess loads as it stands.
        let json = spec.to_json_pretty();
        assert!(ArchSpec::from_json(&json, "skeleton").is_ok(), "{json}");
    }

    #[test]
    fn an_mlp_with_batch_norm_is_flattened_first() {
        let spec = skeleton_spec(&file(vec![
            layer("fc1", &[64, 784]),
            bn("bn1", 64),
            layer("fc2", &[10, 64]),
        ]));
        assert_eq!(
            ops(&spec),
            ["flatten", "linear", "batch_norm1d", "relu", "linear"]
        );
        assert_eq!(params(&spec), ["fc1", "bn1", "fc2"]);
    }
}
