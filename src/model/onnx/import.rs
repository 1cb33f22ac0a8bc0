//! The conversion proper: walks the ONNX graph in node order, keeping for each
//! ONNX value either a constant (folded) or the spec node that computes it
//! with its per-item shape, and emits spec v2 nodes and their weights.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value as Json};

use super::fold;
use super::patterns::{self, Fused};
use super::proto::{type_proto, GraphProto, ModelProto, NodeProto};
use super::tensor::{
    attr, attr_float, attr_int, attr_ints, attr_str, constant_value, decode, filled, is_float_type,
    numel, Const, Data, BATCH,
};
use super::{Imported, SUPPORTED_OPS};
use crate::error::{Error, Result};

/// The largest input dimension accepted (a guard against absurd declared shapes).
const MAX_DIM: usize = 1 << 20;

/// What an ONNX value is while converting.
#[derive(Debug, Clone)]
enum Val {
    /// Known at import time.
    Const(Const),
    /// Computed by the spec node `node` (or `input`), per-item shape `shape`.
    Node { node: String, shape: Vec<usize> },
}

/// Weights, as `Imported::weights` holds them.
type Weights = Vec<(String, Vec<usize>, Vec<f32>)>;

struct Converter<'a> {
    origin: &'a str,
    opset: i64,
    graph: &'a GraphProto,
    values: HashMap<String, Val>,
    nodes: Vec<Json>,
    weights: Weights,
    names: HashSet<String>,
    notes: Vec<String>,
    plan: HashMap<usize, Fused>,
    consumers: HashMap<String, usize>,
    /// The static batch size the graph declares, if any (`Reshape` to `[1, -1]`).
    static_batch: Option<i64>,
    /// Normalization recognized at the input, while nothing else read it.
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
    input_read: bool,
}

/// Imports a decoded model (see [`super::import`]).
pub(crate) fn convert(model: &ModelProto, origin: &str) -> Result<Imported> {
    let fail = |message: String| Error::Onnx {
        origin: origin.to_string(),
        message,
    };
    let graph = model
        .graph
        .as_ref()
        .filter(|g| !g.node.is_empty())
        .ok_or_else(|| fail("not an ONNX model (no graph with nodes)".into()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain().is_empty() || o.domain() == "ai.onnx")
        .map(|o| o.version())
        .ok_or_else(|| fail("not an ONNX model (no ai.onnx opset import)".into()))?;
    let producer = format!("{} {}", model.producer_name(), model.producer_version())
        .trim()
        .to_string();

    let mut consumers: HashMap<String, usize> = HashMap::new();
    for n in &graph.node {
        for x in &n.input {
            *consumers.entry(x.clone()).or_default() += 1;
        }
    }
    for o in &graph.output {
        *consumers.entry(o.name().to_string()).or_default() += 1;
    }
    let mut c = Converter {
        origin,
        opset,
        graph,
        values: HashMap::new(),
        nodes: Vec::new(),
        weights: Vec::new(),
        names: HashSet::from(["input".to_string()]),
        notes: Vec::new(),
        plan: patterns::find(graph),
        consumers,
        static_batch: None,
        mean: None,
        std: None,
        input_read: false,
    };
    for t in &graph.initializer {
        let value = decode(t).map_err(&fail)?;
        c.values.insert(t.name().to_string(), Val::Const(value));
    }
    let input_shape = c.graph_input()?;
    for (i, n) in graph.node.iter().enumerate() {
        match c.plan.get(&i).cloned() {
            Some(Fused::Skip) => continue,
            Some(Fused::Gelu { x, tanh }) => {
                let (x, shape) = c.runtime_value(n, &x)?;
                let (approximate, form) = if tanh {
                    ("tanh", "tanh")
                } else {
                    ("none", "erf")
                };
                let fields = json!({ "approximate": approximate });
                c.emit(n, i, "", "gelu", fields, &[x], shape)?;
                c.notes.push(format!(
                    "recognized the {form} form of GELU ending at node '{}'",
                    n.name()
                ));
            }
            Some(Fused::Silu { x }) => {
                let (x, shape) = c.runtime_value(n, &x)?;
                c.emit(n, i, "", "silu", json!({}), &[x], shape)?;
            }
            Some(Fused::HardSwish { x }) => {
                let (x, shape) = c.runtime_value(n, &x)?;
                c.emit(n, i, "", "hard_swish", json!({}), &[x], shape)?;
            }
            Some(Fused::LinearBias { matmul, bias }) => {
                let mm = graph
                    .node
                    .get(matmul)
                    .ok_or_else(|| fail("bad pattern".into()))?;
                c.matmul(mm, n, i, Some(&bias))?;
            }
            None => c.node(n, i)?,
        }
    }
    c.finish(graph, input_shape, producer)
}

impl Converter<'_> {
    fn error(&self, message: impl Into<String>) -> Error {
        // Messages write a per-item shape `[C, H, W]` as `[N, {shape:?}]`;
        // show it as one list, `[N, C, H, W]`.
        let message = message.into().replace("[N, [", "[N, ").replace("]]", "]");
        Error::Onnx {
            origin: self.origin.to_string(),
            message,
        }
    }

    /// An error about node `n`, naming it, its op and the opset.
    fn at(&self, n: &NodeProto, i: usize, what: impl std::fmt::Display) -> Error {
        self.error(format!(
            "node '{}' ({}, opset {}): {what}",
            display_name(n, i),
            n.op_type(),
            self.opset
        ))
    }

    /// An attribute of node `n` that cannot be honoured.
    fn bad_attr(&self, n: &NodeProto, i: usize, name: &str, why: impl std::fmt::Display) -> Error {
        let value = attr(n, name).map_or_else(|| "(absent)".to_string(), attr_text);
        self.at(n, i, format!("attribute {name} = {value}: {why}"))
    }

    fn unsupported(&self, n: &NodeProto, i: usize, detail: &str) -> Error {
        self.at(
            n,
            i,
            format!(
                "op {} is not supported{detail}; supported ops: {SUPPORTED_OPS}",
                n.op_type()
            ),
        )
    }

    /// The graph's one non-initializer input, bound to the value `input`.
    fn graph_input(&mut self) -> Result<Vec<usize>> {
        let inputs: Vec<_> = self
            .graph
            .input
            .iter()
            .filter(|v| !self.values.contains_key(v.name()))
            .collect();
        let [input] = inputs[..] else {
            let names: Vec<_> = inputs.iter().map(|v| v.name()).collect();
            return Err(self.error(format!(
                "the graph has {} inputs ({}); exactly one (the image or feature batch) is supported",
                inputs.len(),
                names.join(", ")
            )));
        };
        let name = input.name();
        let tensor = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(t)) => t,
            _ => return Err(self.error(format!("graph input '{name}' is not a tensor"))),
        };
        if tensor.elem_type.is_some_and(|t| t != 1) {
            return Err(self.error(format!(
                "graph input '{name}' has element type {}; float32 is supported",
                tensor.elem_type()
            )));
        }
        let dims = tensor.shape.as_ref().map(|s| &s.dim[..]).unwrap_or(&[]);
        if dims.len() != 2 && dims.len() != 4 {
            return Err(self.error(format!(
                "graph input '{name}' has rank {}; [N, C, H, W] or [N, F] is supported",
                dims.len()
            )));
        }
        use super::proto::tensor_shape_proto::dimension::Value as Dim;
        let mut shape = Vec::new();
        for (k, d) in dims.iter().enumerate() {
            let fixed = match &d.value {
                Some(Dim::DimValue(v)) if *v > 0 => Some(*v),
                _ => None,
            };
            if k == 0 {
                self.static_batch = fixed;
                continue;
            }
            let what = ["batch", "C", "H", "W"];
            let axis = if dims.len() == 2 { "F" } else { what[k] };
            let v = fixed
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v <= MAX_DIM)
                .ok_or_else(|| {
                    let shown = match &d.value {
                        Some(Dim::DimValue(v)) => v.to_string(),
                        Some(Dim::DimParam(p)) => format!("'{p}'"),
                        None => "unknown".into(),
                    };
                    self.error(format!(
                        "graph input '{name}' has a dynamic or invalid {axis} dimension ({shown}); \
                         only the batch dimension may be dynamic: export with a fixed input size"
                    ))
                })?;
            shape.push(v);
        }
        if numel(&shape).is_none_or(|n| n > 1 << 28) {
            return Err(self.error(format!("graph input '{name}' shape {shape:?} is too large")));
        }
        self.values.insert(
            name.to_string(),
            Val::Node {
                node: "input".into(),
                shape: shape.clone(),
            },
        );
        Ok(shape)
    }

    /// The value of input `k` of `n`.
    fn input(&self, n: &NodeProto, i: usize, k: usize) -> Result<&Val> {
        let name = n
            .input
            .get(k)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.at(n, i, format!("input {k} is missing")))?;
        self.values.get(name).ok_or_else(|| {
            self.at(
                n,
                i,
                format!("input '{name}' is not computed by any earlier node"),
            )
        })
    }

    /// The value of optional input `k`, `None` when absent or empty.
    fn opt_input(&self, n: &NodeProto, i: usize, k: usize) -> Result<Option<&Val>> {
        match n.input.get(k) {
            Some(s) if !s.is_empty() => self.input(n, i, k).map(Some),
            _ => Ok(None),
        }
    }

    /// Input `k` as a computed tensor: (spec node name, shape).
    fn runtime(&self, n: &NodeProto, i: usize, k: usize) -> Result<(String, Vec<usize>)> {
        match self.input(n, i, k)? {
            Val::Node { node, shape } => Ok((node.clone(), shape.clone())),
            Val::Const(_) => Err(self.unsupported(
                n,
                i,
                &format!(" with a constant as input {k} (only computed tensors)"),
            )),
        }
    }

    /// The named value as a computed tensor.
    fn runtime_value(&self, n: &NodeProto, value: &str) -> Result<(String, Vec<usize>)> {
        match self.values.get(value) {
            Some(Val::Node { node, shape }) => Ok((node.clone(), shape.clone())),
            _ => Err(self.error(format!(
                "node '{}' ({}): input '{value}' is not a computed tensor",
                n.name(),
                n.op_type()
            ))),
        }
    }

    /// Input `k` as a constant.
    fn constant(&self, n: &NodeProto, i: usize, k: usize, what: &str) -> Result<Const> {
        match self.input(n, i, k)? {
            Val::Const(c) => Ok(c.clone()),
            Val::Node { .. } => Err(self.at(
                n,
                i,
                format!("{what} (input {k}) must be a constant, not a computed tensor"),
            )),
        }
    }

    fn set_output(&mut self, n: &NodeProto, i: usize, value: Val) -> Result<()> {
        let out = n
            .output
            .first()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.at(n, i, "has no output"))?;
        self.values.insert(out.clone(), value);
        Ok(())
    }

    /// Emits a spec node for ONNX node `n` (`suffix` distinguishes a second
    /// spec node made from the same ONNX node), reading `inputs`, and binds
    /// `n`'s output to it unless `suffix` is set.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        n: &NodeProto,
        i: usize,
        suffix: &str,
        op: &str,
        fields: Json,
        inputs: &[String],
        shape: Vec<usize>,
    ) -> Result<String> {
        let base = format!("{}{suffix}", display_name(n, i));
        let mut name = base.clone();
        let mut k = 2;
        while self.names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        if inputs.iter().any(|x| x == "input") {
            self.input_read = true;
        }
        let mut node = Map::new();
        node.insert("name".into(), json!(name));
        node.insert("op".into(), json!(op));
        node.insert("inputs".into(), json!(inputs));
        if let Json::Object(extra) = fields {
            for (key, v) in extra {
                let v = if v == json!("$param") { json!(name) } else { v };
                node.insert(key, v);
            }
        }
        self.nodes.push(Json::Object(node));
        if suffix.is_empty() {
            self.set_output(
                n,
                i,
                Val::Node {
                    node: name.clone(),
                    shape,
                },
            )?;
        }
        Ok(name)
    }

    fn weight(&mut self, param: &str, leaf: &str, dims: Vec<usize>, data: Vec<f32>) {
        self.weights.push((format!("{param}.{leaf}"), dims, data));
    }

    /// Binds `n`'s output to the same value as its input `k` (Identity, Dropout).
    fn alias(&mut self, n: &NodeProto, i: usize, k: usize) -> Result<()> {
        let v = self.input(n, i, k)?.clone();
        self.set_output(n, i, v)
    }

    /// Converts one ONNX node that is in no pattern.
    fn node(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        if !(n.domain().is_empty() || n.domain() == "ai.onnx") {
            return Err(self.unsupported(n, i, &format!(" (domain '{}')", n.domain())));
        }
        match n.op_type() {
            "Constant" => {
                let c = constant_value(n).map_err(|e| self.at(n, i, e))?;
                self.set_output(n, i, Val::Const(c))
            }
            "Identity" | "Dropout" => self.alias(n, i, 0),
            "Conv" => self.conv(n, i),
            "BatchNormalization" => self.batch_norm(n, i),
            "Relu" => self.activation(n, i, "relu", json!({})),
            "Sigmoid" => self.activation(n, i, "sigmoid", json!({})),
            "Tanh" => self.activation(n, i, "tanh", json!({})),
            "HardSwish" => self.activation(n, i, "hard_swish", json!({})),
            "LeakyRelu" => {
                let alpha = attr_float(n, "alpha").unwrap_or(0.01);
                self.activation(n, i, "leaky_relu", json!({"negative_slope": num(alpha)}))
            }
            "HardSigmoid" => {
                let alpha = attr_float(n, "alpha").unwrap_or(0.2);
                let beta = attr_float(n, "beta").unwrap_or(0.5);
                self.activation(
                    n,
                    i,
                    "hard_sigmoid",
                    json!({"alpha": num(alpha), "beta": num(beta)}),
                )
            }
            "Gelu" => {
                let approximate = attr_str(n, "approximate").unwrap_or_else(|| "none".into());
                if approximate != "none" && approximate != "tanh" {
                    return Err(self.bad_attr(n, i, "approximate", "must be none or tanh"));
                }
                self.activation(n, i, "gelu", json!({ "approximate": approximate }))
            }
            "Clip" => self.clip(n, i),
            "Softmax" => self.softmax(n, i),
            "Add" | "Sub" | "Mul" | "Div" => self.arithmetic(n, i),
            "MaxPool" | "AveragePool" => self.pool(n, i),
            "GlobalAveragePool" => {
                let (x, shape) = self.runtime(n, i, 0)?;
                let [c, _, _] = shape[..] else {
                    return Err(self.at(n, i, format!("expects [N, C, H, W], got [N, {shape:?}]")));
                };
                self.emit(
                    n,
                    i,
                    "",
                    "adaptive_avg_pool2d",
                    json!({"output_size": 1}),
                    &[x],
                    vec![c, 1, 1],
                )?;
                Ok(())
            }
            "ReduceMean" => self.reduce_mean(n, i),
            "Flatten" => self.flatten(n, i),
            "Reshape" => self.reshape(n, i),
            "Squeeze" => self.squeeze(n, i),
            "Unsqueeze" => {
                let c = self.constant(n, i, 0, "the data")?;
                let axes = self.axes(n, i, 13)?.unwrap_or_default();
                let out = fold::unsqueeze(&c, &axes).map_err(|e| self.at(n, i, e))?;
                self.set_output(n, i, Val::Const(out))
            }
            "Gemm" => self.gemm(n, i),
            "MatMul" => self.matmul(n, n, i, None),
            "Concat" => self.concat(n, i),
            "Pad" => self.pad(n, i),
            "Shape" => {
                let dims: Vec<i64> = match self.input(n, i, 0)? {
                    Val::Const(c) => c.dims.iter().map(|&d| d as i64).collect(),
                    Val::Node { shape, .. } => {
                        let mut d = vec![BATCH];
                        d.extend(shape.iter().map(|&v| v as i64));
                        d
                    }
                };
                let c = fold::shape_of(dims, attr_int(n, "start"), attr_int(n, "end"));
                self.set_output(n, i, Val::Const(c))
            }
            "Gather" => {
                let data = self.constant(n, i, 0, "the data")?;
                let indices = self.constant(n, i, 1, "the indices")?;
                let out = fold::gather(&data, &indices, attr_int(n, "axis").unwrap_or(0))
                    .map_err(|e| self.at(n, i, e))?;
                self.set_output(n, i, Val::Const(out))
            }
            "Cast" => {
                let to = attr_int(n, "to").unwrap_or(1);
                match self.input(n, i, 0)?.clone() {
                    Val::Const(c) => {
                        let out =
                            fold::cast(&c, is_float_type(to)).map_err(|e| self.at(n, i, e))?;
                        self.set_output(n, i, Val::Const(out))
                    }
                    // A computed tensor is float32 already; a cast to float is a no-op.
                    v @ Val::Node { .. } if to == 1 => self.set_output(n, i, v),
                    Val::Node { .. } => Err(self.bad_attr(
                        n,
                        i,
                        "to",
                        "only a cast to float32 of a computed tensor is supported",
                    )),
                }
            }
            "Slice" => self.slice(n, i),
            "Transpose" => {
                let c = self.constant(n, i, 0, "the data")?;
                let perm = attr_ints(n, "perm");
                let out = fold::transpose(&c, perm.as_deref()).map_err(|e| self.at(n, i, e))?;
                self.set_output(n, i, Val::Const(out))
            }
            "ConstantOfShape" => {
                let shape = self.constant(n, i, 0, "the shape")?.int_values();
                let mut dims = Vec::new();
                for d in shape {
                    dims.push(
                        usize::try_from(d).map_err(|_| self.at(n, i, format!("dimension {d}")))?,
                    );
                }
                let value = match attr(n, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => decode(t).map_err(|e| self.at(n, i, e))?,
                    None => Const::new(vec![1], Data::F32(vec![0.0])),
                };
                let out = filled(dims, &value).map_err(|e| self.at(n, i, e))?;
                self.set_output(n, i, Val::Const(out))
            }
            "Erf" => Err(self.unsupported(n, i, " outside the GELU pattern x·0.5·(1 + erf(x/√2))")),
            "Pow" => Err(self.unsupported(
                n,
                i,
                " outside the GELU pattern x·0.5·(1 + tanh(√(2/π)·(x + 0.044715·x³)))",
            )),
            _ => Err(self.unsupported(n, i, "")),
        }
    }

    fn activation(&mut self, n: &NodeProto, i: usize, op: &str, fields: Json) -> Result<()> {
        let (x, shape) = self.runtime(n, i, 0)?;
        self.emit(n, i, "", op, fields, &[x], shape)?;
        Ok(())
    }

    /// Axes from the `axes` attribute, or from input 1 from opset `input_from` on.
    fn axes(&self, n: &NodeProto, i: usize, input_from: i64) -> Result<Option<Vec<i64>>> {
        if self.opset >= input_from {
            Ok(match self.opt_input(n, i, 1)? {
                Some(Val::Const(c)) => Some(c.int_values()),
                Some(Val::Node { .. }) => return Err(self.at(n, i, "axes must be a constant")),
                None => None,
            })
        } else {
            Ok(attr_ints(n, "axes"))
        }
    }

    /// `kernel_shape`/`strides`/`dilations`-style attribute of two positive values.
    fn pair(&self, n: &NodeProto, i: usize, name: &str, default: [usize; 2]) -> Result<[usize; 2]> {
        match attr_ints(n, name) {
            None => Ok(default),
            Some(v) => match v[..] {
                [a, b]
                    if a > 0
                        && b > 0
                        && a as u64 <= MAX_DIM as u64
                        && b as u64 <= MAX_DIM as u64 =>
                {
                    Ok([a as usize, b as usize])
                }
                _ => Err(self.bad_attr(
                    n,
                    i,
                    name,
                    "two positive values (a 2-D operation) are supported",
                )),
            },
        }
    }

    /// Padding `[top, left, bottom, right]` from `pads` or `auto_pad`.
    fn pads(
        &self,
        n: &NodeProto,
        i: usize,
        size: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<[usize; 4]> {
        let auto = attr_str(n, "auto_pad").unwrap_or_default();
        match auto.as_str() {
            "" | "NOTSET" => match attr_ints(n, "pads") {
                None => Ok([0; 4]),
                Some(p) => match p[..] {
                    [a, b, c, d] if p.iter().all(|&v| (0..=MAX_DIM as i64).contains(&v)) => {
                        Ok([a as usize, b as usize, c as usize, d as usize])
                    }
                    _ => Err(self.bad_attr(n, i, "pads", "four non-negative values are supported")),
                },
            },
            "VALID" => Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut begin = [0; 2];
                let mut end = [0; 2];
                for k in 0..2 {
                    let out = size[k].div_ceil(stride[k]);
                    let span = kernel[k].saturating_sub(1).saturating_mul(dilation[k]) + 1;
                    let last = (out.max(1) - 1).saturating_mul(stride[k]);
                    let total = last.saturating_add(span).saturating_sub(size[k]);
                    let small = total / 2;
                    (begin[k], end[k]) = if auto == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                }
                Ok([begin[0], begin[1], end[0], end[1]])
            }
            _ => Err(self.bad_attr(n, i, "auto_pad", "NOTSET, VALID, SAME_UPPER or SAME_LOWER")),
        }
    }

    fn conv(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let (mut x, shape) = self.runtime(n, i, 0)?;
        let w = self.constant(n, i, 1, "the weight")?;
        let [o, ipg, kh, kw] = w.dims[..] else {
            return Err(self.bad_attr(
                n,
                i,
                "kernel_shape",
                format!(
                    "weight shape {:?}: only 2-D convolutions are supported",
                    w.dims
                ),
            ));
        };
        let [c, h, wd] = shape[..] else {
            return Err(self.at(n, i, format!("expects [N, C, H, W], got [N, {shape:?}]")));
        };
        if kh == 0 || kw == 0 || o == 0 {
            return Err(self.at(n, i, format!("weight shape {:?} is empty", w.dims)));
        }
        let group = attr_int(n, "group").unwrap_or(1);
        let groups = usize::try_from(group)
            .ok()
            .filter(|&g| g > 0 && ipg.checked_mul(g) == Some(c) && o % g == 0);
        let Some(groups) = groups else {
            return Err(self.bad_attr(
                n,
                i,
                "group",
                format!("input has {c} channels, weight {:?}", w.dims),
            ));
        };
        if let Some(k) = attr_ints(n, "kernel_shape") {
            if k != [kh as i64, kw as i64] {
                return Err(self.bad_attr(
                    n,
                    i,
                    "kernel_shape",
                    format!("weight shape is {:?}", w.dims),
                ));
            }
        }
        let stride = self.pair(n, i, "strides", [1, 1])?;
        let dilation = self.pair(n, i, "dilations", [1, 1])?;
        let [top, left, bottom, right] = self.pads(n, i, [h, wd], [kh, kw], stride, dilation)?;
        let bias = match self.opt_input(n, i, 2)? {
            None => None,
            Some(Val::Const(b)) if b.len() == o => Some(b.floats().map_err(|e| self.at(n, i, e))?),
            Some(_) => {
                return Err(self.at(n, i, format!("the bias must be a constant of {o} values")))
            }
        };
        let (ph, pw) = (top.min(bottom), left.min(right));
        let (mut h, mut wd) = (h, wd);
        if top != bottom || left != right {
            // Asymmetric: the excess goes to an explicit zero pad2d.
            let extra = [top - ph, bottom - ph, left - pw, right - pw];
            h += extra[0] + extra[1];
            wd += extra[2] + extra[3];
            x = self.emit(
                n,
                i,
                ".pad",
                "pad2d",
                json!({"padding": extra, "value": 0.0}),
                &[x],
                vec![c, h, wd],
            )?;
        }
        let oh = window_out(h, kh, stride[0], ph, dilation[0], false);
        let ow = window_out(wd, kw, stride[1], pw, dilation[1], false);
        let (Some(oh), Some(ow)) = (oh, ow) else {
            return Err(self.at(
                n,
                i,
                format!("kernel {kh}x{kw} does not fit the {h}x{wd} input"),
            ));
        };
        let fields = json!({
            "param": "$param", "in_channels": c, "out_channels": o, "kernel_size": [kh, kw],
            "stride": stride, "padding": [ph, pw], "dilation": dilation, "groups": groups,
            "bias": bias.is_some(),
        });
        let name = self.emit(n, i, "", "conv2d", fields, &[x], vec![o, oh, ow])?;
        let weight = w.floats().map_err(|e| self.at(n, i, e))?;
        self.weight(&name, "weight", w.dims.clone(), weight);
        if let Some(b) = bias {
            self.weight(&name, "bias", vec![o], b);
        }
        Ok(())
    }

    fn batch_norm(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let (x, shape) = self.runtime(n, i, 0)?;
        if attr_int(n, "training_mode").unwrap_or(0) != 0 {
            return Err(self.bad_attr(n, i, "training_mode", "only inference mode is supported"));
        }
        let c = shape.first().copied().unwrap_or(0);
        let op = match shape.len() {
            3 => "batch_norm2d",
            1 => "batch_norm1d",
            _ => {
                return Err(self.at(
                    n,
                    i,
                    format!("expects [N, C, H, W] or [N, C], got [N, {shape:?}]"),
                ))
            }
        };
        let mut params = Vec::new();
        for (k, leaf) in [
            (1, "weight"),
            (2, "bias"),
            (3, "running_mean"),
            (4, "running_var"),
        ] {
            let t = self.constant(n, i, k, leaf)?;
            if t.len() != c {
                return Err(self.at(
                    n,
                    i,
                    format!("{leaf} has {} values for {c} channels", t.len()),
                ));
            }
            params.push((leaf, t.floats().map_err(|e| self.at(n, i, e))?));
        }
        let eps = attr_float(n, "epsilon").unwrap_or(1e-5);
        let fields = json!({"param": "$param", "num_features": c, "eps": num(eps)});
        let name = self.emit(n, i, "", op, fields, &[x], shape)?;
        for (leaf, v) in params {
            self.weight(&name, leaf, vec![c], v);
        }
        Ok(())
    }

    fn clip(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let bound = |k: usize, attr_name: &str| -> Result<Option<f32>> {
            if self.opset < 11 {
                return Ok(attr_float(n, attr_name));
            }
            match self.opt_input(n, i, k)? {
                None => Ok(None),
                Some(Val::Const(c)) => c
                    .scalar()
                    .map(Some)
                    .ok_or_else(|| self.at(n, i, format!("{attr_name} must be a single constant"))),
                Some(Val::Node { .. }) => {
                    Err(self.at(n, i, format!("{attr_name} must be a constant")))
                }
            }
        };
        let (lo, hi) = (bound(1, "min")?, bound(2, "max")?);
        if lo == Some(0.0) && hi.is_none() {
            return self.activation(n, i, "relu", json!({}));
        }
        let lo = lo.unwrap_or(f32::MIN).max(f32::MIN);
        let hi = hi.unwrap_or(f32::MAX).min(f32::MAX);
        if lo.is_nan() || hi.is_nan() {
            return Err(self.at(n, i, "min or max is NaN"));
        }
        self.activation(n, i, "clip", json!({"min": num(lo), "max": num(hi)}))
    }

    fn softmax(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let (x, shape) = self.runtime(n, i, 0)?;
        let default = if self.opset < 13 { 1 } else { -1 };
        let axis = attr_int(n, "axis").unwrap_or(default);
        if shape.len() != 1 || !(axis == 1 || axis == -1) {
            return Err(self.bad_attr(
                n,
                i,
                "axis",
                format!(
                    "softmax over dimension 1 of [N, K] is supported, the input is [N, {shape:?}]"
                ),
            ));
        }
        self.emit(n, i, "", "softmax", json!({}), &[x], shape)?;
        Ok(())
    }

    fn arithmetic(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let op = n.op_type().to_string();
        let a = self.input(n, i, 0)?.clone();
        let b = self.input(n, i, 1)?.clone();
        match (a, b) {
            (Val::Const(p), Val::Const(q)) => {
                let out = fold::binary(&op, &p, &q).map_err(|e| self.at(n, i, e))?;
                self.set_output(n, i, Val::Const(out))
            }
            (Val::Node { node: p, shape: ps }, Val::Node { node: q, shape: qs }) => {
                let spec_op = match op.as_str() {
                    "Add" => "add",
                    "Mul" => "mul",
                    _ => {
                        return Err(self.unsupported(
                            n,
                            i,
                            " between two computed tensors (only with a constant)",
                        ))
                    }
                };
                let shape = if ps == qs {
                    ps.clone()
                } else if is_gate(&ps, &qs) {
                    qs.clone()
                } else if is_gate(&qs, &ps) {
                    ps.clone()
                } else {
                    return Err(self.at(
                        n,
                        i,
                        format!("shapes [N, {ps:?}] and [N, {qs:?}]: same shapes, or [C, 1, 1] with [C, H, W], are supported"),
                    ));
                };
                self.emit(n, i, "", spec_op, json!({}), &[p, q], shape)?;
                Ok(())
            }
            (Val::Node { node, shape }, Val::Const(c)) => {
                self.affine(n, i, &op, node, shape, &c, false)
            }
            (Val::Const(c), Val::Node { node, shape }) => {
                self.affine(n, i, &op, node, shape, &c, true)
            }
        }
    }

    /// `x op c` (or `c op x` when `const_first`) as an affine map, a
    /// channel_affine, or part of the input normalization.
    #[allow(clippy::too_many_arguments)]
    fn affine(
        &mut self,
        n: &NodeProto,
        i: usize,
        op: &str,
        x: String,
        shape: Vec<usize>,
        c: &Const,
        const_first: bool,
    ) -> Result<()> {
        let values = broadcast_channels(c, &shape).map_err(|e| self.at(n, i, e))?;
        let (scale, shift): (Vec<f32>, Vec<f32>) = match (op, const_first) {
            ("Add", _) => (vec![1.0; values.len()], values.clone()),
            ("Sub", false) => (vec![1.0; values.len()], values.iter().map(|v| -v).collect()),
            ("Sub", true) => (vec![-1.0; values.len()], values.clone()),
            ("Mul", _) => (values.clone(), vec![0.0; values.len()]),
            ("Div", false) => {
                if values.contains(&0.0) {
                    return Err(self.at(n, i, "divides by a constant zero"));
                }
                (
                    values.iter().map(|v| 1.0 / v).collect(),
                    vec![0.0; values.len()],
                )
            }
            _ => return Err(self.unsupported(n, i, " dividing a constant by a computed tensor")),
        };
        if scale.iter().chain(&shift).any(|v| !v.is_finite()) {
            return Err(self.at(n, i, "the constant is not finite"));
        }
        if x == "input"
            && !self.input_read
            && self.normalization(n, i, op, const_first, &shape, &values)
        {
            return self.set_output(n, i, Val::Node { node: x, shape });
        }
        if let ([s], [t]) = (&scale[..], &shift[..]) {
            let fields = json!({"scale": num(*s), "shift": num(*t)});
            self.emit(n, i, "", "affine", fields, &[x], shape)?;
            return Ok(());
        }
        let channels = scale.len();
        let fields = json!({"param": "$param", "num_features": channels, "bias": true});
        let name = self.emit(n, i, "", "channel_affine", fields, &[x], shape)?;
        self.weight(&name, "weight", vec![channels], scale);
        self.weight(&name, "bias", vec![channels], shift);
        Ok(())
    }

    /// Whether `x op values` at the raw input is (part of) `(x - mean) / std`,
    /// recording it if so.
    fn normalization(
        &mut self,
        n: &NodeProto,
        i: usize,
        op: &str,
        const_first: bool,
        shape: &[usize],
        values: &[f32],
    ) -> bool {
        let [channels, _, _] = shape[..] else {
            return false;
        };
        // Only if this node is the sole reader of the (partly normalized) input.
        let sole = n
            .input
            .iter()
            .filter(
                |s| matches!(self.values.get(*s), Some(Val::Node { node, .. }) if node == "input"),
            )
            .all(|s| self.consumers.get(s) == Some(&1));
        if !sole || const_first {
            return false;
        }
        let per_channel = |v: &[f32]| -> Vec<f32> {
            if v.len() == 1 {
                vec![v[0]; channels]
            } else {
                v.to_vec()
            }
        };
        let values = per_channel(values);
        match op {
            "Sub" if self.mean.is_none() => {
                // (x / s - m) = (x - m·s) / s
                let mean = match &self.std {
                    Some(s) => values.iter().zip(s).map(|(m, s)| m * s).collect(),
                    None => values,
                };
                self.mean = Some(mean);
            }
            "Div" | "Mul" if self.std.is_none() => {
                let std: Vec<f32> = if op == "Div" {
                    values
                } else {
                    values.iter().map(|v| 1.0 / v).collect()
                };
                if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                    return false;
                }
                self.std = Some(std);
            }
            _ => return false,
        }
        self.notes.push(format!(
            "recognized {op} by a constant at the input (node '{}') as input normalization",
            display_name(n, i)
        ));
        true
    }

    fn pool(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let (x, shape) = self.runtime(n, i, 0)?;
        let [c, h, w] = shape[..] else {
            return Err(self.at(n, i, format!("expects [N, C, H, W], got [N, {shape:?}]")));
        };
        let max = n.op_type() == "MaxPool";
        if max
            && n.output
                .get(1)
                .is_some_and(|o| !o.is_empty() && self.consumers.contains_key(o))
        {
            return Err(self.at(n, i, "its Indices output is used, which is not supported"));
        }
        let kernel = match attr_ints(n, "kernel_shape") {
            Some(_) => self.pair(n, i, "kernel_shape", [1, 1])?,
            None => return Err(self.bad_attr(n, i, "kernel_shape", "is required")),
        };
        let stride = self.pair(n, i, "strides", [1, 1])?;
        let dilation = self.pair(n, i, "dilations", [1, 1])?;
        let [top, left, bottom, right] = self.pads(n, i, [h, w], kernel, stride, dilation)?;
        if top != bottom || left != right {
            return Err(self.bad_attr(
                n,
                i,
                "pads",
                "asymmetric padding of a pool is not supported",
            ));
        }
        let ceil = attr_int(n, "ceil_mode").unwrap_or(0) != 0;
        let oh = window_out(h, kernel[0], stride[0], top, dilation[0], ceil);
        let ow = window_out(w, kernel[1], stride[1], left, dilation[1], ceil);
        let (Some(oh), Some(ow)) = (oh, ow) else {
            return Err(self.at(
                n,
                i,
                format!("kernel {kernel:?} does not fit the {h}x{w} input"),
            ));
        };
        let (op, fields) = if max {
            let f = json!({"kernel_size": kernel, "stride": stride, "padding": [top, left],
                           "dilation": dilation, "ceil_mode": ceil});
            ("max_pool2d", f)
        } else {
            if dilation != [1, 1] {
                return Err(self.bad_attr(
                    n,
                    i,
                    "dilations",
                    "a dilated average pool is not supported",
                ));
            }
            let include = attr_int(n, "count_include_pad").unwrap_or(0) != 0;
            let f = json!({"kernel_size": kernel, "stride": stride, "padding": [top, left],
                           "ceil_mode": ceil, "count_include_pad": include});
            ("avg_pool2d", f)
        };
        self.emit(n, i, "", op, fields, &[x], vec![c, oh, ow])?;
        Ok(())
    }

    fn reduce_mean(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let (x, shape) = self.runtime(n, i, 0)?;
        let axes = self.axes(n, i, 18)?.unwrap_or_default();
        let mut norm = Vec::new();
        for &a in &axes {
            norm.push(fold::axis(a, shape.len() + 1).map_err(|e| self.bad_attr(n, i, "axes", e))?);
        }
        norm.sort_unstable();
        let [c, _, _] = shape[..] else {
            return Err(self.at(n, i, format!("expects [N, C, H, W], got [N, {shape:?}]")));
        };
        if norm != [2, 3] {
            return Err(self.bad_attr(
                n,
                i,
                "axes",
                "only the mean over H and W (axes 2, 3) is supported",
            ));
        }
        if attr_int(n, "keepdims").unwrap_or(1) != 0 {
            self.emit(
                n,
                i,
                "",
                "adaptive_avg_pool2d",
                json!({"output_size": 1}),
                &[x],
                vec![c, 1, 1],
            )?;
        } else {
            self.emit(n, i, "", "global_avg_pool2d", json!({}), &[x], vec![c])?;
        }
        Ok(())
    }

    /// Emits a flatten of `x` to `[N, F]` (nothing when it is flat already).
    fn flatten_to(&mut self, n: &NodeProto, i: usize, x: String, shape: &[usize]) -> Result<()> {
        let f = numel(shape).ok_or_else(|| self.at(n, i, "shape too large"))?;
        if shape.len() == 1 {
            return self.set_output(
                n,
                i,
                Val::Node {
                    node: x,
                    shape: vec![f],
                },
            );
        }
        self.emit(n, i, "", "flatten", json!({"start_dim": 1}), &[x], vec![f])?;
        Ok(())
    }

    fn flatten(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let (x, shape) = self.runtime(n, i, 0)?;
        let axis = attr_int(n, "axis").unwrap_or(1);
        if fold::axis(axis, shape.len() + 1) != Ok(1) {
            return Err(self.bad_attr(
                n,
                i,
                "axis",
                "only flattening from dimension 1 is supported",
            ));
        }
        self.flatten_to(n, i, x, &shape)
    }

    fn reshape(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let target = self.constant(n, i, 1, "the shape")?.int_values();
        match self.input(n, i, 0)?.clone() {
            Val::Const(c) => {
                let out = fold::reshape(&c, &target).map_err(|e| self.at(n, i, e))?;
                self.set_output(n, i, Val::Const(out))
            }
            Val::Node { node, shape } => {
                let f = numel(&shape)
                    .and_then(|f| i64::try_from(f).ok())
                    .unwrap_or(-2);
                let batch_ok = |d: i64| d == BATCH || d == 0 || Some(d) == self.static_batch;
                let flat = match target[..] {
                    [b, t] => (batch_ok(b) && (t == f || t == -1)) || (b == -1 && t == f),
                    _ => false,
                };
                if !flat {
                    let shown: Vec<String> = target
                        .iter()
                        .map(|&d| {
                            if d == BATCH {
                                "N".into()
                            } else {
                                d.to_string()
                            }
                        })
                        .collect();
                    return Err(self.at(
                        n,
                        i,
                        format!(
                            "reshape of [N, {shape:?}] to [{}]: only a reshape to [N, {f}] is supported",
                            shown.join(", ")
                        ),
                    ));
                }
                self.flatten_to(n, i, node, &shape)
            }
        }
    }

    fn squeeze(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let axes = self.axes(n, i, 13)?.unwrap_or_default();
        match self.input(n, i, 0)?.clone() {
            Val::Const(c) => {
                let out = fold::squeeze(&c, &axes).map_err(|e| self.at(n, i, e))?;
                self.set_output(n, i, Val::Const(out))
            }
            Val::Node { node, shape } => {
                let rank = shape.len() + 1;
                let mut drop = Vec::new();
                for &a in &axes {
                    drop.push(fold::axis(a, rank).map_err(|e| self.bad_attr(n, i, "axes", e))?);
                }
                if axes.is_empty() {
                    drop = (1..rank).filter(|&k| shape[k - 1] == 1).collect();
                }
                let kept: Vec<usize> = (1..rank).filter(|k| !drop.contains(k)).collect();
                let ok = !drop.contains(&0)
                    && drop.iter().all(|&k| shape[k - 1] == 1)
                    && kept.iter().skip(1).all(|&k| shape[k - 1] == 1);
                if ok && kept.len() > 1 {
                    // A partial squeeze of [C, 1, 1] (exporters squeeze one
                    // axis at a time): the same values, viewed with fewer
                    // unit axes until the last squeeze flattens them.
                    let view = kept.iter().map(|&k| shape[k - 1]).collect();
                    return self.set_output(n, i, Val::Node { node, shape: view });
                }
                if !ok {
                    return Err(self.bad_attr(
                        n,
                        i,
                        "axes",
                        format!(
                            "only a squeeze of [N, {}] to [N, F] is supported",
                            shape
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                self.flatten_to(n, i, node, &shape)
            }
        }
    }

    fn gemm(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let (x, shape) = self.runtime(n, i, 0)?;
        let b = self.constant(n, i, 1, "B")?;
        if attr_int(n, "transA").unwrap_or(0) != 0 {
            return Err(self.bad_attr(n, i, "transA", "a transposed input is not supported"));
        }
        let trans_b = attr_int(n, "transB").unwrap_or(0) != 0;
        let alpha = attr_float(n, "alpha").unwrap_or(1.0);
        let beta = attr_float(n, "beta").unwrap_or(1.0);
        let bias = match self.opt_input(n, i, 2)? {
            None => None,
            Some(Val::Const(c)) => Some(c.clone()),
            Some(Val::Node { .. }) => return Err(self.at(n, i, "the bias C must be a constant")),
        };
        let bias = bias
            .map(|c| c.floats().map(|v| (c.dims, v)))
            .transpose()
            .map_err(|e| self.at(n, i, e))?;
        self.linear(
            n,
            i,
            x,
            &shape,
            &b,
            trans_b,
            alpha,
            bias.map(|(d, v)| (d, v, beta)),
        )
    }

    /// A `MatMul` by a constant `[in, out]` (node `mm`), with the bias of the
    /// `Add` node `n` when fused (then `n` is the node the linear is named after).
    fn matmul(
        &mut self,
        mm: &NodeProto,
        n: &NodeProto,
        i: usize,
        bias: Option<&str>,
    ) -> Result<()> {
        let (x, shape) = self.runtime(mm, i, 0)?;
        let w = self.constant(mm, i, 1, "the weight")?;
        let bias = match bias {
            None => None,
            Some(name) => match self.values.get(name) {
                Some(Val::Const(c)) => Some((
                    c.dims.clone(),
                    c.floats().map_err(|e| self.at(n, i, e))?,
                    1.0,
                )),
                _ => return Err(self.at(n, i, format!("bias '{name}' is not a constant"))),
            },
        };
        self.linear(n, i, x, &shape, &w, false, 1.0, bias)
    }

    /// Emits `linear` for `x · B` (`B` is `[in, out]`, or `[out, in]` when
    /// `b_is_out_in`), scaled by `alpha`, plus `beta · bias`.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &mut self,
        n: &NodeProto,
        i: usize,
        x: String,
        shape: &[usize],
        b: &Const,
        b_is_out_in: bool,
        alpha: f32,
        bias: Option<(Vec<usize>, Vec<f32>, f32)>,
    ) -> Result<()> {
        let [d0, d1] = b.dims[..] else {
            return Err(self.at(
                n,
                i,
                format!("the weight has shape {:?}, a matrix is needed", b.dims),
            ));
        };
        let (out_f, in_f) = if b_is_out_in { (d0, d1) } else { (d1, d0) };
        if shape != [in_f] {
            return Err(self.at(
                n,
                i,
                format!(
                    "input [N, {shape:?}] does not match the weight {:?} (needs [N, {in_f}])",
                    b.dims
                ),
            ));
        }
        let values = b.floats().map_err(|e| self.at(n, i, e))?;
        let mut weight = Vec::with_capacity(values.len());
        if b_is_out_in {
            weight.extend(values.iter().map(|v| v * alpha));
        } else {
            // Stored [in, out]: the spec wants PyTorch's [out, in].
            for o in 0..out_f {
                for k in 0..in_f {
                    weight.push(values.get(k * out_f + o).copied().unwrap_or(0.0) * alpha);
                }
            }
        }
        let bias = match bias {
            None => None,
            Some((dims, v, beta)) => {
                let per_out = v.len() == out_f && dims.iter().filter(|&&d| d != 1).count() <= 1;
                if v.len() == 1 {
                    Some(vec![v[0] * beta; out_f])
                } else if per_out {
                    Some(v.iter().map(|x| x * beta).collect())
                } else {
                    return Err(self.at(
                        n,
                        i,
                        format!("bias of shape {dims:?} for {out_f} outputs"),
                    ));
                }
            }
        };
        let fields = json!({"param": "$param", "in_features": in_f, "out_features": out_f,
                            "bias": bias.is_some()});
        let name = self.emit(n, i, "", "linear", fields, &[x], vec![out_f])?;
        self.weight(&name, "weight", vec![out_f, in_f], weight);
        if let Some(b) = bias {
            self.weight(&name, "bias", vec![out_f], b);
        }
        Ok(())
    }

    fn concat(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let axis = attr_int(n, "axis").unwrap_or(1);
        let mut vals = Vec::new();
        for k in 0..n.input.len() {
            vals.push(self.input(n, i, k)?.clone());
        }
        if vals.iter().all(|v| matches!(v, Val::Const(_))) {
            let parts: Vec<&Const> = vals
                .iter()
                .filter_map(|v| match v {
                    Val::Const(c) => Some(c),
                    Val::Node { .. } => None,
                })
                .collect();
            let out = fold::concat(&parts, axis).map_err(|e| self.at(n, i, e))?;
            return self.set_output(n, i, Val::Const(out));
        }
        let mut names = Vec::new();
        let mut shapes = Vec::new();
        for v in vals {
            match v {
                Val::Node { node, shape } => {
                    names.push(node);
                    shapes.push(shape);
                }
                Val::Const(_) => {
                    return Err(self.unsupported(n, i, " mixing constants and computed tensors"))
                }
            }
        }
        let first = shapes[0].clone();
        if fold::axis(axis, first.len() + 1) != Ok(1) {
            return Err(self.bad_attr(
                n,
                i,
                "axis",
                "only concatenation along dimension 1 is supported",
            ));
        }
        let mut out = first.clone();
        out[0] = 0;
        for s in &shapes {
            if s.len() != first.len() || s[1..] != first[1..] {
                return Err(self.at(
                    n,
                    i,
                    format!("cannot concatenate [N, {first:?}] and [N, {s:?}]"),
                ));
            }
            out[0] += s[0];
        }
        if names.len() == 1 {
            return self.set_output(
                n,
                i,
                Val::Node {
                    node: names.remove(0),
                    shape: out,
                },
            );
        }
        self.emit(n, i, "", "concat", json!({}), &names, out)?;
        Ok(())
    }

    fn pad(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let (x, shape) = self.runtime(n, i, 0)?;
        let mode = attr_str(n, "mode").unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(self.bad_attr(n, i, "mode", "only constant padding is supported"));
        }
        let rank = shape.len() + 1;
        let (pads, value, axes) = if self.opset < 11 {
            let p = attr_ints(n, "pads").unwrap_or_default();
            (p, attr_float(n, "value").unwrap_or(0.0), None)
        } else {
            let p = self.constant(n, i, 1, "pads")?.int_values();
            let v = match self.opt_input(n, i, 2)? {
                None => 0.0,
                Some(Val::Const(c)) => c
                    .scalar()
                    .ok_or_else(|| self.at(n, i, "constant_value must be one value"))?,
                Some(_) => return Err(self.at(n, i, "constant_value must be a constant")),
            };
            let axes = match self.opt_input(n, i, 3)? {
                None => None,
                Some(Val::Const(c)) => Some(c.int_values()),
                Some(_) => return Err(self.at(n, i, "axes must be a constant")),
            };
            (p, v, axes)
        };
        let axes: Vec<usize> = match axes {
            None => (0..rank).collect(),
            Some(a) => a
                .iter()
                .map(|&a| fold::axis(a, rank))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| self.at(n, i, e))?,
        };
        if pads.len() != 2 * axes.len() {
            return Err(self.bad_attr(
                n,
                i,
                "pads",
                format!("{} values for {} axes", pads.len(), axes.len()),
            ));
        }
        let mut begin = vec![0i64; rank];
        let mut end = vec![0i64; rank];
        for (k, &a) in axes.iter().enumerate() {
            begin[a] = pads[k];
            end[a] = pads[k + axes.len()];
        }
        let spatial_only = rank == 4 && (0..2).all(|a| begin[a] == 0 && end[a] == 0);
        let in_range = begin
            .iter()
            .chain(&end)
            .all(|&p| (0..=MAX_DIM as i64).contains(&p));
        if !spatial_only || !in_range || !value.is_finite() {
            return Err(self.bad_attr(
                n,
                i,
                "pads",
                "only non-negative padding of H and W of [N, C, H, W] by a finite value is supported",
            ));
        }
        let p = [begin[2], end[2], begin[3], end[3]].map(|v| v as usize);
        let out = vec![shape[0], shape[1] + p[0] + p[1], shape[2] + p[2] + p[3]];
        self.emit(
            n,
            i,
            "",
            "pad2d",
            json!({"padding": p, "value": num(value)}),
            &[x],
            out,
        )?;
        Ok(())
    }

    fn slice(&mut self, n: &NodeProto, i: usize) -> Result<()> {
        let data = self.constant(n, i, 0, "the data")?;
        let (starts, ends, axes, steps) = if self.opset < 10 {
            (
                attr_ints(n, "starts").unwrap_or_default(),
                attr_ints(n, "ends").unwrap_or_default(),
                attr_ints(n, "axes"),
                None,
            )
        } else {
            let ints = |k: usize| -> Result<Option<Vec<i64>>> {
                match self.opt_input(n, i, k)? {
                    None => Ok(None),
                    Some(Val::Const(c)) => Ok(Some(c.int_values())),
                    Some(_) => Err(self.at(n, i, format!("input {k} must be a constant"))),
                }
            };
            (
                ints(1)?.unwrap_or_default(),
                ints(2)?.unwrap_or_default(),
                ints(3)?,
                ints(4)?,
            )
        };
        let out = fold::slice(&data, &starts, &ends, axes.as_deref(), steps.as_deref())
            .map_err(|e| self.at(n, i, e))?;
        self.set_output(n, i, Val::Const(out))
    }

    /// Checks the output, drops nodes nothing reads, and builds the spec.
    fn finish(
        mut self,
        graph: &GraphProto,
        input_shape: Vec<usize>,
        producer: String,
    ) -> Result<Imported> {
        let [output] = &graph.output[..] else {
            let names: Vec<_> = graph.output.iter().map(|o| o.name()).collect();
            return Err(self.error(format!(
                "the graph has {} outputs ({}); exactly one (the logits) is supported",
                names.len(),
                names.join(", ")
            )));
        };
        let (last, shape) = match self.values.get(output.name()) {
            Some(Val::Node { node, shape }) if node != "input" => (node.clone(), shape.clone()),
            _ => {
                return Err(self.error(format!(
                    "the graph output '{}' is not computed from the input",
                    output.name()
                )))
            }
        };
        if shape.len() != 1 {
            return Err(self.error(format!(
                "the graph output '{}' has shape [N, {shape:?}]; logits [N, K] are needed",
                output.name()
            )));
        }
        merge_zero_pads(&mut self.nodes, &mut self.notes);
        // Keep the nodes the output depends on (patterns and folding leave dead ones).
        let mut live = HashSet::from([last.clone()]);
        for node in self.nodes.iter().rev() {
            let name = node["name"].as_str().unwrap_or_default();
            if live.contains(name) {
                for x in node["inputs"].as_array().into_iter().flatten() {
                    live.insert(x.as_str().unwrap_or_default().to_string());
                }
            }
        }
        let dropped = self.nodes.len();
        self.nodes
            .retain(|node| live.contains(node["name"].as_str().unwrap_or_default()));
        let dropped = dropped - self.nodes.len();
        if dropped > 0 {
            self.notes.push(format!(
                "dropped {dropped} nodes that do not lead to the output"
            ));
        }
        self.weights.retain(|(name, _, _)| {
            name.rsplit_once('.')
                .is_some_and(|(param, _)| live.contains(param))
        });
        let mut input = json!({"shape": input_shape, "range": [0.0, 1.0]});
        let channels = input_shape.first().copied().unwrap_or(0);
        let bad_len = |v: &Option<Vec<f32>>| v.as_ref().is_some_and(|v| v.len() != channels);
        if bad_len(&self.mean) || bad_len(&self.std) {
            return Err(self.error("input normalization constants do not match the input channels"));
        }
        if self.mean.is_some() || self.std.is_some() {
            let mean = self.mean.clone().unwrap_or_else(|| vec![0.0; channels]);
            let std = self.std.clone().unwrap_or_else(|| vec![1.0; channels]);
            input["mean"] = json!(mean.iter().map(|&v| num(v)).collect::<Vec<_>>());
            input["std"] = json!(std.iter().map(|&v| num(v)).collect::<Vec<_>>());
        }
        let name = std::path::Path::new(self.origin)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .or_else(|| Some(graph.name().to_string()).filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "onnx".into());
        let spec = json!({"version": 2, "name": name, "input": input, "nodes": self.nodes});
        Ok(Imported {
            spec,
            weights: self.weights,
            opset: self.opset,
            producer,
            notes: self.notes,
            external: Vec::new(),
        })
    }
}

/// Folds a zero `pad2d` read only by a `conv2d` into the convolution's own
/// padding when the sum is symmetric (explicit `Pad` + `Conv`, as TensorFlow
/// exports write `SAME` padding).
fn merge_zero_pads(nodes: &mut Vec<Json>, notes: &mut Vec<String>) {
    let mut k = 0;
    while k < nodes.len() {
        let pad = &nodes[k];
        let name = pad["name"].as_str().unwrap_or_default().to_string();
        let zero = pad["op"] == "pad2d" && pad["value"].as_f64() == Some(0.0);
        let readers: Vec<usize> = (0..nodes.len())
            .filter(|&j| {
                nodes[j]["inputs"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == name.as_str()))
            })
            .collect();
        let amounts: Vec<u64> = pad["padding"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_u64)
            .collect();
        let mergeable = match (&readers[..], &amounts[..]) {
            ([j], [t, b, l, r]) => zero && nodes[*j]["op"] == "conv2d" && t == b && l == r,
            _ => false,
        };
        if !mergeable {
            k += 1;
            continue;
        }
        let j = readers[0];
        let conv_pad: Vec<u64> = nodes[j]["padding"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_u64)
            .collect();
        let [ph, pw] = conv_pad[..] else {
            k += 1;
            continue;
        };
        let source = nodes[k]["inputs"].clone();
        nodes[j]["padding"] = json!([ph + amounts[0], pw + amounts[2]]);
        nodes[j]["inputs"] = source;
        notes.push(format!(
            "merged zero padding '{name}' into the convolution '{}'",
            nodes[j]["name"].as_str().unwrap_or_default()
        ));
        nodes.remove(k);
    }
}

/// The spec name of ONNX node `n` (index `i`): its name made safe (`/` → `.`),
/// or `<op>_<i>` when it has none.
fn display_name(n: &NodeProto, i: usize) -> String {
    let raw = n.name().trim_matches('/');
    let mut s = String::with_capacity(raw.len());
    for ch in raw.chars() {
        s.push(match ch {
            '/' => '.',
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' => c,
            _ => '_',
        });
    }
    if s.is_empty() || s == "input" {
        format!("{}_{i}", n.op_type())
    } else {
        s
    }
}

/// A short rendering of an attribute's value for messages.
fn attr_text(a: &super::proto::AttributeProto) -> String {
    if !a.ints.is_empty() {
        format!("{:?}", a.ints)
    } else if !a.floats.is_empty() {
        format!("{:?}", a.floats)
    } else if let Some(s) = &a.s {
        format!("'{}'", String::from_utf8_lossy(s))
    } else if let Some(v) = a.i {
        v.to_string()
    } else if let Some(v) = a.f {
        v.to_string()
    } else {
        "(a tensor or graph)".into()
    }
}

/// An `f32` as a JSON number with its shortest decimal form (`1e-5`, not
/// `9.99999974e-6`). Callers check finiteness; a non-finite value becomes 0.
fn num(v: f32) -> Json {
    let shortest: f64 = v.to_string().parse().unwrap_or(0.0);
    serde_json::Number::from_f64(shortest).map_or(json!(0.0), Json::Number)
}

/// Whether `gate` is `[C, 1, 1]` against `full` `[C, H, W]` (squeeze-and-excitation).
fn is_gate(gate: &[usize], full: &[usize]) -> bool {
    matches!((gate, full), ([c, 1, 1], [d, _, _]) if c == d)
}

/// The values of a constant broadcast against a computed tensor of per-item
/// shape `shape`: one value (a scalar) or one per channel (dimension 1).
fn broadcast_channels(c: &Const, shape: &[usize]) -> std::result::Result<Vec<f32>, String> {
    let values = c.floats()?;
    let rank = shape.len() + 1;
    if c.dims.len() > rank {
        return Err(format!(
            "a constant of shape {:?} adds dimensions to [N, {shape:?}]",
            c.dims
        ));
    }
    if values.len() == 1 {
        return Ok(values);
    }
    let offset = rank - c.dims.len();
    for (k, &d) in c.dims.iter().enumerate() {
        let axis = offset + k;
        let fits = d == 1 || (axis == 1 && shape.first() == Some(&d));
        if !fits {
            return Err(format!(
                "a constant of shape {:?} against [N, {shape:?}]: only a scalar or one value per channel is supported",
                c.dims
            ));
        }
    }
    Ok(values)
}

/// The output length of a window (conv or pool) over `input` with symmetric
/// padding `pad`, PyTorch's rule for `ceil_mode`; `None` when it does not fit.
fn window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    ceil: bool,
) -> Option<usize> {
    let padded = input.checked_add(pad.checked_mul(2)?)?;
    let span = dilation
        .checked_mul(kernel.checked_sub(1)?)?
        .checked_add(1)?;
    if span > padded || stride == 0 {
        return None;
    }
    let room = padded - span;
    let mut out = if ceil {
        room.div_ceil(stride)
    } else {
        room / stride
    } + 1;
    // PyTorch: the last window must start inside the input or the left padding.
    if ceil && (out - 1) * stride >= input + pad {
        out -= 1;
    }
    Some(out)
}
