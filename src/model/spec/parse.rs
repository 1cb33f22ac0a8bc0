//! Reading and validating the spec's JSON: the version check, the hand parsing
//! of layers (residual blocks recursively, so errors carry the full path) and
//! the checks of the input section and the output.

use serde_json::Value;

use super::{fmt_shape, ArchSpec, LayerSpec, MAX_CLASSES, SPEC_VERSION};
use crate::error::{Error, Result};

impl ArchSpec {
    /// Parses a spec from JSON text; `origin` names where it came from in errors.
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
        match top.get("version") {
            None => return Err(err("missing key `version`".into())),
            Some(v) => match v.as_u64() {
                Some(n) if n as u32 == SPEC_VERSION => {}
                Some(n) if n > SPEC_VERSION as u64 => {
                    return Err(err(format!(
                        "`version` is {n}, newer than this xai-audit {} reads (version {SPEC_VERSION}): upgrade xai-audit",
                        env!("CARGO_PKG_VERSION")
                    )))
                }
                _ => {
                    return Err(err(format!(
                        "`version` must be {SPEC_VERSION}, found {v}"
                    )))
                }
            },
        }
        let layers = match top.remove("layers") {
            Some(Value::Array(items)) => items,
            Some(_) => return Err(err("`layers` must be a list".into())),
            None => return Err(err("missing key `layers`".into())),
        };
        let layers = parse_layers(layers, "layers").map_err(err)?;
        top.insert("layers".into(), Value::Array(Vec::new()));
        let mut spec: ArchSpec =
            serde_json::from_value(Value::Object(top)).map_err(|e| err(e.to_string()))?;
        spec.layers = layers;
        spec.validate().map_err(err)?;
        Ok(spec)
    }

    /// The spec as pretty JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("spec serializes")
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
        if self.layers.is_empty() {
            return Err("`layers` is empty".into());
        }
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
        return serde_json::from_value::<LayerSpec>(Value::Object(obj)).map_err(|e| {
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
    "residual",
];
