//! Reading and validating the spec's JSON: the version check, the hand parsing
//! of v2 nodes and of v1 layers (residual blocks recursively, so errors carry
//! the full path), v1's translation to nodes, the graph's wiring checks and
//! the checks of the input section and the output.

use serde_json::Value;

use serde::Deserialize;

use super::types::{InputSpec, NodeSpec, INPUT_NAME};
use super::{fmt_shape, ArchSpec, LayerSpec, MAX_CLASSES, SPEC_VERSION};
use crate::error::{Error, Result};

/// What the command line replaces in a spec ([`ArchSpec::with_overrides`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// The valid input range `[lo, hi]`.
    pub range: Option<[f32; 2]>,
    /// The class names, in output order.
    pub classes: Option<Vec<String>>,
    /// The input mean (one value, or one per channel).
    pub mean: Option<Vec<f32>>,
    /// The input standard deviation (one value, or one per channel).
    pub std: Option<Vec<f32>>,
}

impl ArchSpec {
    /// Parses a spec from JSON text; `origin` names where it came from in
    /// errors. Version 2 is a graph of `nodes`; version 1's `layers` (with
    /// residual blocks) is translated to nodes named by their layer paths.
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let err = |message: String| Error::Spec {
            origin: origin.to_string(),
            message,
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        let Value::Object(mut top) = value else {
            return Err(err("expected a JSON object at the top level".into()));
        };
        let version = match top.get("version") {
            None => return Err(err("missing key `version`".into())),
            Some(v) => match v.as_u64() {
                Some(n @ 1..=2) => n as u32,
                Some(n) if n > SPEC_VERSION as u64 => {
                    return Err(err(format!(
                        "`version` is {n}, newer than this xai-audit {} reads (versions 1 and {SPEC_VERSION}): upgrade xai-audit",
                        env!("CARGO_PKG_VERSION")
                    )))
                }
                _ => {
                    return Err(err(format!(
                        "`version` must be 1 or {SPEC_VERSION}, found {v}"
                    )))
                }
            },
        };
        let (key, other) = if version == 1 {
            ("layers", "nodes")
        } else {
            ("nodes", "layers")
        };
        if top.contains_key(other) {
            return Err(err(format!(
                "version {version} specs list `{key}`, not `{other}`"
            )));
        }
        let items = match top.remove(key) {
            Some(Value::Array(items)) => items,
            Some(_) => return Err(err(format!("`{key}` must be a list"))),
            None => return Err(err(format!("missing key `{key}`"))),
        };
        let nodes = if version == 1 {
            let layers = parse_layers(items, "layers").map_err(err)?;
            if layers.is_empty() {
                return Err(err("`layers` is empty".into()));
            }
            translate_v1(layers)
        } else {
            parse_nodes(items).map_err(err)?
        };
        top.insert("version".into(), Value::from(SPEC_VERSION));
        let head: Head =
            serde_json::from_value(Value::Object(top)).map_err(|e| err(e.to_string()))?;
        let spec = ArchSpec {
            version: SPEC_VERSION,
            name: head.name,
            input: head.input,
            classes: head.classes,
            nodes,
            strip_prefix: head.strip_prefix,
        };
        spec.validate().map_err(err)?;
        Ok(spec)
    }

    /// A spec from a v1-style chain of layers (residual blocks allowed),
    /// translated to nodes as [`ArchSpec::from_json`] translates version 1.
    pub fn from_layers(input: InputSpec, layers: Vec<LayerSpec>) -> Self {
        ArchSpec {
            version: SPEC_VERSION,
            name: None,
            input,
            classes: Vec::new(),
            nodes: translate_v1(layers),
            strip_prefix: None,
        }
    }

    /// The spec with its input range, class names and normalization
    /// replaced where given, checked again; `origin` names it in errors.
    pub fn with_overrides(mut self, o: Overrides, origin: &str) -> Result<Self> {
        if o == Overrides::default() {
            return Ok(self);
        }
        if let Some(r) = o.range {
            self.input.range = r;
        }
        if let Some(c) = o.classes {
            self.classes = c;
        }
        // One value stands for every channel.
        let channels = self.input.shape[0];
        let per_channel = |v: Vec<f32>| match v.as_slice() {
            [one] => vec![*one; channels],
            _ => v,
        };
        if let Some(m) = o.mean {
            self.input.mean = Some(per_channel(m));
        }
        if let Some(s) = o.std {
            self.input.std = Some(per_channel(s));
        }
        self.validate().map_err(|message| Error::Spec {
            origin: origin.to_string(),
            message,
        })?;
        Ok(self)
    }

    /// The spec as readable JSON: one line per top-level key and per node.
    pub fn to_json_pretty(&self) -> String {
        let one = |v: &dyn erased::Json| v.compact();
        let mut fields = vec![format!("  \"version\": {}", self.version)];
        if let Some(name) = &self.name {
            fields.push(format!("  \"name\": {}", one(name)));
        }
        fields.push(format!("  \"input\": {}", one(&self.input)));
        if !self.classes.is_empty() {
            fields.push(format!("  \"classes\": {}", one(&self.classes)));
        }
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("    {}", one(n)))
            .collect();
        fields.push(format!("  \"nodes\": [\n{}\n  ]", nodes.join(",\n")));
        if let Some(prefix) = &self.strip_prefix {
            fields.push(format!("  \"strip_prefix\": {}", one(prefix)));
        }
        format!("{{\n{}\n}}", fields.join(",\n"))
    }

    /// Checks the input section and every layer's arguments, then infers shapes.
    fn validate(&self) -> std::result::Result<(), String> {
        let [c, h, w] = self.input.shape;
        if c == 0 || h == 0 || w == 0 {
            return Err(format!(
                "`input.shape` must be positive, found {:?}",
                self.input.shape
            ));
        }
        let [lo, hi] = self.input.range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(format!(
                "`input.range` must be finite with lo < hi, found [{lo}, {hi}]"
            ));
        }
        for (key, values) in [("mean", &self.input.mean), ("std", &self.input.std)] {
            if let Some(v) = values {
                if v.len() != c {
                    return Err(format!(
                        "`input.{key}` has {} values but the input has {c} channels",
                        v.len()
                    ));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(format!("`input.{key}` must be finite"));
                }
            }
        }
        if let Some(std) = &self.input.std {
            if std.iter().any(|&s| s <= 0.0) {
                return Err("`input.std` must be positive".into());
            }
        }
        if self.nodes.is_empty() {
            return Err("`nodes` is empty".into());
        }
        self.check_graph()?;
        let infos = self.layer_infos()?;
        let out = &infos.last().expect("non-empty").output_shape;
        if out.len() != 1 {
            return Err(format!(
                "the network must end in a vector of class scores [N, K], but its output is {}; add a flatten or global pool",
                fmt_shape(out)
            ));
        }
        if out[0] > MAX_CLASSES {
            return Err(format!(
                "the network outputs {} classes, more than the {MAX_CLASSES} this build supports",
                out[0]
            ));
        }
        if !self.classes.is_empty() && self.classes.len() != self.num_classes() {
            let binary = if out[0] == 1 {
                " (one output z is a binary classifier: name its 2 classes, the negative first, or none)"
            } else {
                ""
            };
            return Err(format!(
                "`classes` names {} classes but the network outputs {}{binary}",
                self.classes.len(),
                out[0]
            ));
        }
        Ok(())
    }
}

mod erased {
    use std::io::Write;

    /// One-line JSON of any serializable value, with a space after each
    /// `:` and `,` as people write it (the spec's types cannot fail).
    pub(super) trait Json {
        fn compact(&self) -> String;
    }

    impl<T: serde::Serialize> Json for T {
        fn compact(&self) -> String {
            let mut out = Vec::new();
            let mut ser = serde_json::Serializer::with_formatter(&mut out, Spaced);
            self.serialize(&mut ser).expect("spec types serialize");
            String::from_utf8(out).expect("serde_json writes UTF-8")
        }
    }

    /// serde_json's compact formatter with spaced separators.
    struct Spaced;

    impl serde_json::ser::Formatter for Spaced {
        fn begin_array_value<W: ?Sized + Write>(
            &mut self,
            writer: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first {
                Ok(())
            } else {
                writer.write_all(b", ")
            }
        }

        fn begin_object_key<W: ?Sized + Write>(
            &mut self,
            writer: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first {
                Ok(())
            } else {
                writer.write_all(b", ")
            }
        }

        fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
            writer.write_all(b": ")
        }
    }
}

/// The spec's top-level keys other than its nodes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    #[allow(dead_code)] // checked above
    version: u32,
    #[serde(default)]
    name: Option<String>,
    input: InputSpec,
    #[serde(default)]
    classes: Vec<String>,
    #[serde(default)]
    strip_prefix: Option<String>,
}

impl ArchSpec {
    /// Names unique and not `input`; every input an earlier node; arities;
    /// every node but the last read by another.
    fn check_graph(&self) -> std::result::Result<(), String> {
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut used = vec![false; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            let here = format!("nodes[{i}] `{}` ({})", node.name, node.op.op_name());
            if node.name.is_empty() || node.name == INPUT_NAME {
                return Err(format!(
                    "nodes[{i}]: a node's `name` must be non-empty and not `{INPUT_NAME}`"
                ));
            }
            if matches!(node.op, LayerSpec::Residual { .. }) {
                return Err(format!(
                    "{here}: `residual` is a version 1 layer; in version 2 write its branches as nodes joined by an `add`"
                ));
            }
            let (lo, hi) = node.op.arity();
            let n = node.inputs.len();
            if n < lo || n > hi {
                let want = match (lo, hi) {
                    (a, b) if a == b => format!("{a}"),
                    (a, _) => format!("at least {a}"),
                };
                return Err(format!("{here}: takes {want} inputs, given {n}"));
            }
            for name in &node.inputs {
                if name == INPUT_NAME {
                    continue;
                }
                match seen.get(name.as_str()) {
                    Some(&j) => used[j] = true,
                    None if self.nodes.iter().any(|m| &m.name == name) => {
                        return Err(format!(
                            "{here}: input `{name}` comes later in `nodes`; list nodes so that each follows its inputs"
                        ))
                    }
                    None => return Err(format!("{here}: input `{name}` names no node")),
                }
            }
            if seen.insert(&node.name, i).is_some() {
                return Err(format!("{here}: the name `{}` is used twice", node.name));
            }
        }
        let last = self.nodes.len() - 1;
        if let Some(i) = (0..last).find(|&i| !used[i]) {
            return Err(format!(
                "nodes[{i}] `{}`: its output is never used (the last node is the network's output; every other node must feed one)",
                self.nodes[i].name
            ));
        }
        Ok(())
    }
}

/// v1's layer chain as nodes named by layer path: a residual block at `i`
/// becomes its branches (`i.shortcut.j`, then `i.body.j`), an `add` named `i`
/// (or `i.sum` followed by its activation, named `i`).
fn translate_v1(layers: Vec<LayerSpec>) -> Vec<NodeSpec> {
    fn chain(layers: Vec<LayerSpec>, prefix: &str, cur: &mut String, nodes: &mut Vec<NodeSpec>) {
        for (i, layer) in layers.into_iter().enumerate() {
            let path = format!("{prefix}{i}");
            match layer {
                LayerSpec::Residual {
                    body,
                    shortcut,
                    activation,
                } => {
                    // The shortcut first, so that the block's last conv2d
                    // node is its body's (Grad-CAM's default layer).
                    let mut skip = cur.clone();
                    if let Some(s) = shortcut {
                        chain(s, &format!("{path}.shortcut."), &mut skip, nodes);
                    }
                    let mut main = cur.clone();
                    chain(body, &format!("{path}.body."), &mut main, nodes);
                    let sum = match activation {
                        Some(_) => format!("{path}.sum"),
                        None => path.clone(),
                    };
                    nodes.push(NodeSpec {
                        name: sum.clone(),
                        inputs: vec![main, skip],
                        op: LayerSpec::Add,
                    });
                    *cur = sum;
                    if let Some(a) = activation {
                        nodes.push(NodeSpec {
                            name: path.clone(),
                            inputs: vec![cur.clone()],
                            op: *a,
                        });
                        *cur = path;
                    }
                }
                op => {
                    nodes.push(NodeSpec {
                        name: path.clone(),
                        inputs: vec![cur.clone()],
                        op,
                    });
                    *cur = path;
                }
            }
        }
    }
    let mut nodes = Vec::new();
    chain(layers, "", &mut INPUT_NAME.to_string(), &mut nodes);
    nodes
}

/// Parses v2 nodes: `name`, `inputs` (default: the node before, or
/// `input`) and the op's own keys.
fn parse_nodes(items: Vec<Value>) -> std::result::Result<Vec<NodeSpec>, String> {
    let mut nodes: Vec<NodeSpec> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("nodes[{i}]");
        let Value::Object(mut obj) = item else {
            return Err(format!(
                "{path}: expected an object with a `name` and an `op`"
            ));
        };
        let name = match obj.remove("name") {
            Some(Value::String(s)) => s,
            Some(other) => return Err(format!("{path}: `name` must be a string, found {other}")),
            None => return Err(format!("{path}: missing key `name`")),
        };
        let path = format!("{path} `{name}`");
        let inputs = match obj.remove("inputs") {
            None => vec![nodes
                .last()
                .map_or(INPUT_NAME.to_string(), |n| n.name.clone())],
            Some(Value::Array(v)) => v
                .into_iter()
                .map(|s| match s {
                    Value::String(s) => Ok(s),
                    other => Err(format!(
                        "{path}: `inputs` must list node names, found {other}"
                    )),
                })
                .collect::<std::result::Result<_, _>>()?,
            Some(Value::String(s)) => vec![s],
            Some(other) => {
                return Err(format!(
                    "{path}: `inputs` must be a list of node names, found {other}"
                ))
            }
        };
        if obj.get("op").and_then(Value::as_str) == Some("residual") {
            return Err(format!(
                "{path}: `residual` is a version 1 layer; in version 2 write its branches as nodes joined by an `add`"
            ));
        }
        let op = parse_layer(Value::Object(obj), &path)?;
        nodes.push(NodeSpec { name, inputs, op });
    }
    Ok(nodes)
}

fn parse_layers(items: Vec<Value>, path: &str) -> std::result::Result<Vec<LayerSpec>, String> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| parse_layer(v, &format!("{path}[{i}]")))
        .collect()
}

/// Parses one layer, recursing into residual blocks so that errors carry the
/// full path (`layers[3].body[1]`).
fn parse_layer(value: Value, path: &str) -> std::result::Result<LayerSpec, String> {
    let Value::Object(mut obj) = value else {
        return Err(format!("{path}: expected an object with an `op`"));
    };
    let op = match obj.get("op") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("{path}: `op` must be a string, found {other}")),
        None => return Err(format!("{path}: missing key `op`")),
    };
    if op != "residual" {
        // serde lets a tagged unit variant (`relu`) through with any keys.
        let extra = obj.keys().find(|k| *k != "op").cloned();
        return serde_json::from_value::<LayerSpec>(Value::Object(obj))
            .and_then(|layer| match (&extra, serde_json::to_value(&layer)) {
                (Some(key), Ok(Value::Object(fields))) if fields.len() == 1 => Err(
                    serde::de::Error::custom(format!("unknown field `{key}`: `{op}` takes none")),
                ),
                _ => Ok(layer),
            })
            .map_err(|e| {
                let msg = e.to_string();
                if msg.starts_with("unknown variant") {
                    format!(
                        "{path}: unknown op `{op}` (supported: {})",
                        SUPPORTED_OPS.join(", ")
                    )
                } else {
                    format!("{path} ({op}): {msg}")
                }
            });
    }
    for key in obj.keys() {
        if !["op", "body", "shortcut", "activation"].contains(&key.as_str()) {
            return Err(format!(
                "{path} (residual): unknown field `{key}`, expected one of `body`, `shortcut`, `activation`"
            ));
        }
    }
    let body = match obj.remove("body") {
        Some(Value::Array(items)) => parse_layers(items, &format!("{path}.body"))?,
        Some(_) => {
            return Err(format!(
                "{path} (residual): `body` must be a list of layers"
            ))
        }
        None => return Err(format!("{path} (residual): missing key `body`")),
    };
    if body.is_empty() {
        return Err(format!("{path} (residual): `body` is empty"));
    }
    let shortcut = match obj.remove("shortcut") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(parse_layers(items, &format!("{path}.shortcut"))?),
        Some(_) => {
            return Err(format!(
                "{path} (residual): `shortcut` must be a list of layers"
            ))
        }
    };
    let activation = match obj.remove("activation") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let layer = parse_layer(v, &format!("{path}.activation"))?;
            if !layer.is_activation() {
                return Err(format!(
                    "{path}.activation: `{}` is not an activation",
                    layer.op_name()
                ));
            }
            Some(Box::new(layer))
        }
    };
    Ok(LayerSpec::Residual {
        body,
        shortcut,
        activation,
    })
}

/// The ops this build supports, as written in JSON.
pub const SUPPORTED_OPS: &[&str] = &[
    "linear",
    "conv2d",
    "batch_norm1d",
    "batch_norm2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "global_avg_pool2d",
    "relu",
    "leaky_relu",
    "gelu",
    "silu",
    "tanh",
    "sigmoid",
    "flatten",
    "dropout",
    "add",
    "mul",
    "concat",
    "clip",
    "hard_sigmoid",
    "hard_swish",
    "softmax",
    "affine",
    "channel_affine",
    "pad2d",
    "random_resize_pad",
    "residual",
];
