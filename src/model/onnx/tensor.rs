//! Constant tensors of an ONNX graph: initializers, `Constant` nodes and the
//! values folded from them, decoded from `TensorProto` into `f32` or `i64`.
//!
//! Every length is checked against the bytes actually present before anything
//! is allocated, so a declared shape of 10¹² elements is an error, not an
//! allocation.

use super::proto::{AttributeProto, NodeProto, TensorProto};

/// The batch size inside folded shape tensors: `Shape(x)[0]` is not known
/// when importing, but a `Reshape` to `[batch, -1]` must still be recognized.
pub(crate) const BATCH: i64 = i64::MIN;

/// The most elements a tensor built by folding (`ConstantOfShape`) may have.
const MAX_FOLDED: usize = 1 << 24;

/// A constant's values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    /// Float types (float, float16, bfloat16, double), as `f32`.
    F32(Vec<f32>),
    /// Integer and boolean types, as `i64`.
    I64(Vec<i64>),
}

/// A constant tensor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Const {
    pub dims: Vec<usize>,
    pub data: Data,
}

/// The number of elements of `dims`, `None` on overflow.
pub(crate) fn numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl Const {
    /// A 1-D integer tensor.
    pub fn ints(values: Vec<i64>) -> Const {
        Const {
            dims: vec![values.len()],
            data: Data::I64(values),
        }
    }

    /// A tensor of shape `dims` holding `data`; the caller keeps them consistent.
    pub fn new(dims: Vec<usize>, data: Data) -> Const {
        Const { dims, data }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// The values as floats; an integer tensor holding the batch size has none.
    pub fn floats(&self) -> Result<Vec<f32>, String> {
        match &self.data {
            Data::F32(v) => Ok(v.clone()),
            Data::I64(v) => {
                if v.contains(&BATCH) {
                    return Err("a value depends on the batch size".into());
                }
                Ok(v.iter().map(|&x| x as f32).collect())
            }
        }
    }

    /// The values as integers (floats are truncated, as `Cast` does).
    pub fn int_values(&self) -> Vec<i64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I64(v) => v.clone(),
        }
    }

    /// The single value of a one-element tensor, as a float.
    pub fn scalar(&self) -> Option<f32> {
        if self.len() != 1 {
            return None;
        }
        self.floats().ok().and_then(|v| v.first().copied())
    }
}

/// Builds a tensor of `dims` filled with `value` (`ConstantOfShape`).
pub(crate) fn filled(dims: Vec<usize>, value: &Const) -> Result<Const, String> {
    let n = numel(&dims)
        .filter(|&n| n <= MAX_FOLDED)
        .ok_or_else(|| format!("a constant of shape {dims:?} is too large"))?;
    let data = match &value.data {
        Data::F32(v) => Data::F32(vec![v.first().copied().unwrap_or(0.0); n]),
        Data::I64(v) => Data::I64(vec![v.first().copied().unwrap_or(0); n]),
    };
    Ok(Const { dims, data })
}

// TensorProto.DataType values (onnx.proto).
const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const UINT16: i32 = 4;
const INT16: i32 = 5;
const INT32: i32 = 6;
const INT64: i32 = 7;
const BOOL: i32 = 9;
const FLOAT16: i32 = 10;
const DOUBLE: i32 = 11;
const UINT32: i32 = 12;
const UINT64: i32 = 13;
const BFLOAT16: i32 = 16;

/// Whether an ONNX data type code is a float type (a `Cast` target).
pub(crate) fn is_float_type(code: i64) -> bool {
    matches!(i32::try_from(code), Ok(FLOAT | FLOAT16 | DOUBLE | BFLOAT16))
}

/// `raw` split into `n` little-endian words of `W` bytes, or why not.
fn words<const W: usize>(raw: &[u8], n: usize) -> Result<Vec<[u8; W]>, String> {
    let need = n.checked_mul(W);
    if need != Some(raw.len()) {
        return Err(format!(
            "holds {} bytes of raw data, its shape needs {n} values of {W} bytes",
            raw.len()
        ));
    }
    Ok(raw
        .chunks_exact(W)
        .map(|c| {
            let mut w = [0u8; W];
            w.copy_from_slice(c);
            w
        })
        .collect())
}

/// Checks that a typed field holds exactly `n` values.
fn typed<T: Clone>(field: &[T], n: usize) -> Result<Vec<T>, String> {
    if field.len() != n {
        return Err(format!("holds {} values, its shape needs {n}", field.len()));
    }
    Ok(field.to_vec())
}

/// Decodes a `TensorProto` (an initializer or a `Constant`'s value).
pub(crate) fn decode(t: &TensorProto) -> Result<Const, String> {
    let name = t.name();
    if super::external::is_external(t) {
        return Err(format!(
            "tensor '{name}' keeps its data in an external file, which is read only when the model is loaded from its file"
        ));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| format!("tensor '{name}' has dimension {d}"))?;
        dims.push(d);
    }
    let n = numel(&dims).ok_or_else(|| format!("tensor '{name}' has shape {dims:?}, too large"))?;
    let raw = t.raw_data.as_deref();
    let fail = |why: String| format!("tensor '{name}' {why}");
    let data = match t.data_type() {
        FLOAT => Data::F32(match raw {
            Some(r) => words::<4>(r, n)
                .map_err(fail)?
                .into_iter()
                .map(f32::from_le_bytes)
                .collect(),
            None => typed(&t.float_data, n).map_err(fail)?,
        }),
        DOUBLE => Data::F32(match raw {
            Some(r) => words::<8>(r, n)
                .map_err(fail)?
                .into_iter()
                .map(|w| f64::from_le_bytes(w) as f32)
                .collect(),
            None => typed(&t.double_data, n)
                .map_err(fail)?
                .into_iter()
                .map(|v| v as f32)
                .collect(),
        }),
        FLOAT16 | BFLOAT16 => {
            let bits: Vec<u16> = match raw {
                Some(r) => words::<2>(r, n)
                    .map_err(fail)?
                    .into_iter()
                    .map(u16::from_le_bytes)
                    .collect(),
                // Half floats in int32_data keep their bits in the low 16.
                None => typed(&t.int32_data, n)
                    .map_err(fail)?
                    .into_iter()
                    .map(|v| v as u16)
                    .collect(),
            };
            let bf16 = t.data_type() == BFLOAT16;
            Data::F32(
                bits.into_iter()
                    .map(|b| {
                        if bf16 {
                            half::bf16::from_bits(b).to_f32()
                        } else {
                            half::f16::from_bits(b).to_f32()
                        }
                    })
                    .collect(),
            )
        }
        INT64 => Data::I64(match raw {
            Some(r) => words::<8>(r, n)
                .map_err(fail)?
                .into_iter()
                .map(i64::from_le_bytes)
                .collect(),
            None => typed(&t.int64_data, n).map_err(fail)?,
        }),
        UINT64 => Data::I64(match raw {
            Some(r) => words::<8>(r, n)
                .map_err(fail)?
                .into_iter()
                .map(|w| u64::from_le_bytes(w) as i64)
                .collect(),
            None => typed(&t.uint64_data, n)
                .map_err(fail)?
                .into_iter()
                .map(|v| v as i64)
                .collect(),
        }),
        INT32 | UINT32 => Data::I64(match raw {
            Some(r) => {
                let unsigned = t.data_type() == UINT32;
                words::<4>(r, n)
                    .map_err(fail)?
                    .into_iter()
                    .map(|w| {
                        if unsigned {
                            i64::from(u32::from_le_bytes(w))
                        } else {
                            i64::from(i32::from_le_bytes(w))
                        }
                    })
                    .collect()
            }
            None => typed(&t.int32_data, n)
                .map_err(fail)?
                .into_iter()
                .map(i64::from)
                .collect(),
        }),
        INT16 | UINT16 => Data::I64(match raw {
            Some(r) => {
                let unsigned = t.data_type() == UINT16;
                words::<2>(r, n)
                    .map_err(fail)?
                    .into_iter()
                    .map(|w| {
                        if unsigned {
                            i64::from(u16::from_le_bytes(w))
                        } else {
                            i64::from(i16::from_le_bytes(w))
                        }
                    })
                    .collect()
            }
            None => typed(&t.int32_data, n)
                .map_err(fail)?
                .into_iter()
                .map(i64::from)
                .collect(),
        }),
        INT8 | UINT8 | BOOL => Data::I64(match raw {
            Some(r) => {
                if r.len() != n {
                    return Err(fail(format!(
                        "holds {} bytes of raw data, its shape needs {n}",
                        r.len()
                    )));
                }
                let signed = t.data_type() == INT8;
                r.iter()
                    .map(|&b| {
                        if signed {
                            i64::from(b as i8)
                        } else {
                            i64::from(b)
                        }
                    })
                    .collect()
            }
            None => typed(&t.int32_data, n)
                .map_err(fail)?
                .into_iter()
                .map(i64::from)
                .collect(),
        }),
        other => {
            return Err(format!(
                "tensor '{name}' has data type {other}, which is not supported \
                 (float, float16, bfloat16, double and integer types are)"
            ))
        }
    };
    Ok(Const { dims, data })
}

/// The attribute `name` of `node`, if present.
pub(crate) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

/// An integer attribute.
pub(crate) fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i())
}

/// A float attribute.
pub(crate) fn attr_float(node: &NodeProto, name: &str) -> Option<f32> {
    attr(node, name).map(|a| a.f())
}

/// An integer-list attribute.
pub(crate) fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// A string attribute.
pub(crate) fn attr_str(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(a.s()).into_owned())
}

/// The value of a `Constant` node, from whichever attribute holds it.
pub(crate) fn constant_value(node: &NodeProto) -> Result<Const, String> {
    if let Some(t) = attr(node, "value").and_then(|a| a.t.as_ref()) {
        return decode(t);
    }
    if let Some(a) = attr(node, "value_float") {
        return Ok(Const::new(Vec::new(), Data::F32(vec![a.f()])));
    }
    if let Some(a) = attr(node, "value_floats") {
        return Ok(Const::new(
            vec![a.floats.len()],
            Data::F32(a.floats.clone()),
        ));
    }
    if let Some(a) = attr(node, "value_int") {
        return Ok(Const::new(Vec::new(), Data::I64(vec![a.i()])));
    }
    if let Some(a) = attr(node, "value_ints") {
        return Ok(Const::ints(a.ints.clone()));
    }
    Err("has no value, value_float(s) or value_int(s) attribute".into())
}
