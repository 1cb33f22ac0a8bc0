//! Constant folding: the `Shape`/`Gather`/`Unsqueeze`/`Concat`/`Cast`/`Slice`
//! chains exporters emit around a flatten, evaluated on constants and on the
//! static shapes the importer infers. The batch size is not known, so it
//! travels as [`BATCH`] and only moves (gather, slice, concat); arithmetic on
//! it is an error.

use super::tensor::{numel, Const, Data, BATCH};

/// Normalizes axis `axis` of a rank-`rank` tensor (negative counts from the end).
pub(crate) fn axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = i64::try_from(rank).map_err(|_| "rank too large".to_string())?;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

/// `Shape(x)` for a computed tensor of per-item shape `shape`, with opset 15's
/// `start`/`end`.
pub(crate) fn shape_of(dims: Vec<i64>, start: Option<i64>, end: Option<i64>) -> Const {
    let r = dims.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let s = clamp(start.unwrap_or(0));
    let e = clamp(end.unwrap_or(r));
    Const::ints(dims.get(s..e.max(s)).unwrap_or(&[]).to_vec())
}

/// `Gather` along `axis` of a constant (rank-1 data, the shape-chain case, or
/// axis 0 of any rank).
pub(crate) fn gather(data: &Const, indices: &Const, axis_attr: i64) -> Result<Const, String> {
    let rank = data.dims.len();
    let ax = axis(axis_attr, rank.max(1))?;
    if ax != 0 || rank == 0 {
        return Err("only Gather along axis 0 of a constant is supported".into());
    }
    let rows = data.dims[0];
    let row_len = numel(&data.dims[1..]).ok_or("shape too large")?;
    let mut picked = Vec::new();
    for &i in &indices.int_values() {
        let i = if i < 0 { i + rows as i64 } else { i };
        if !(0..rows as i64).contains(&i) {
            return Err(format!("index {i} is out of range for {rows} rows"));
        }
        picked.push(i as usize);
    }
    let mut dims = indices.dims.clone();
    dims.extend_from_slice(&data.dims[1..]);
    let data = match &data.data {
        Data::F32(v) => Data::F32(rows_of(v, &picked, row_len)?),
        Data::I64(v) => Data::I64(rows_of(v, &picked, row_len)?),
    };
    Ok(Const::new(dims, data))
}

/// The rows `picked` (each `row_len` long) of `v`, in order.
fn rows_of<T: Copy>(v: &[T], picked: &[usize], row_len: usize) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for &i in picked {
        let start = i.checked_mul(row_len).ok_or("index too large")?;
        let row = v.get(start..start + row_len).ok_or("index out of range")?;
        out.extend_from_slice(row);
    }
    Ok(out)
}

/// The `[ax..]` blocks of each part, interleaved over the `outer` leading
/// indices (row-major concatenation).
fn interleave<T: Copy>(parts: &[Vec<T>], outer: usize) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for o in 0..outer {
        for v in parts {
            let b = v.len() / outer;
            out.extend_from_slice(v.get(o * b..(o + 1) * b).ok_or("bad concat sizes")?);
        }
    }
    Ok(out)
}

/// `Unsqueeze`: inserts size-1 axes at `axes` (of the output).
pub(crate) fn unsqueeze(c: &Const, axes: &[i64]) -> Result<Const, String> {
    let out_rank = c.dims.len() + axes.len();
    let mut ones = Vec::new();
    for &a in axes {
        ones.push(axis(a, out_rank)?);
    }
    let mut dims = Vec::with_capacity(out_rank);
    let mut rest = c.dims.iter();
    for i in 0..out_rank {
        if ones.contains(&i) {
            dims.push(1);
        } else {
            dims.push(*rest.next().ok_or("repeated Unsqueeze axes")?);
        }
    }
    Ok(Const::new(dims, c.data.clone()))
}

/// `Squeeze`: drops the size-1 axes `axes` (all of them when empty).
pub(crate) fn squeeze(c: &Const, axes: &[i64]) -> Result<Const, String> {
    let mut drop = Vec::new();
    for &a in axes {
        let a = axis(a, c.dims.len())?;
        if c.dims[a] != 1 {
            return Err(format!("cannot squeeze axis {a} of size {}", c.dims[a]));
        }
        drop.push(a);
    }
    let dims = c
        .dims
        .iter()
        .enumerate()
        .filter(|&(i, &d)| {
            if axes.is_empty() {
                d != 1
            } else {
                !drop.contains(&i)
            }
        })
        .map(|(_, &d)| d)
        .collect();
    Ok(Const::new(dims, c.data.clone()))
}

/// `Reshape` of a constant (`0` copies a dimension, `-1` is inferred).
pub(crate) fn reshape(c: &Const, target: &[i64]) -> Result<Const, String> {
    let mut dims = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            0 => dims.push(*c.dims.get(i).ok_or("Reshape copies a missing dimension")?),
            -1 if infer.is_none() => {
                infer = Some(i);
                dims.push(1);
            }
            t if t > 0 => dims.push(usize::try_from(t).map_err(|_| "dimension too large")?),
            t => return Err(format!("Reshape target dimension {t} is not supported")),
        }
    }
    let known = numel(&dims).ok_or("shape too large")?;
    if let Some(i) = infer {
        if known == 0 || c.len() % known != 0 {
            return Err(format!("cannot reshape {:?} to {target:?}", c.dims));
        }
        dims[i] = c.len() / known;
    }
    if numel(&dims) != Some(c.len()) {
        return Err(format!("cannot reshape {:?} to {target:?}", c.dims));
    }
    Ok(Const::new(dims, c.data.clone()))
}

/// `Concat` of constants along `axis_attr`.
pub(crate) fn concat(parts: &[&Const], axis_attr: i64) -> Result<Const, String> {
    let first = parts.first().ok_or("Concat of nothing")?;
    let rank = first.dims.len();
    let ax = axis(axis_attr, rank.max(1))?;
    let floats = parts.iter().any(|c| matches!(c.data, Data::F32(_)));
    let outer = numel(first.dims.get(..ax).unwrap_or(&[])).ok_or("shape too large")?;
    let mut dims = first.dims.clone();
    if rank == 0 {
        return Err("Concat of scalars".into());
    }
    dims[ax] = 0;
    for c in parts {
        let same_rank = c.dims.len() == rank;
        let same_other = same_rank
            && c.dims
                .iter()
                .zip(&first.dims)
                .enumerate()
                .all(|(i, (a, b))| i == ax || a == b);
        if !same_other {
            return Err(format!(
                "cannot concatenate {:?} and {:?}",
                first.dims, c.dims
            ));
        }
        dims[ax] = dims[ax].checked_add(c.dims[ax]).ok_or("shape too large")?;
    }
    let outer = outer.max(1);
    let data = if floats {
        let vals: Vec<Vec<f32>> = parts.iter().map(|c| c.floats()).collect::<Result<_, _>>()?;
        Data::F32(interleave(&vals, outer)?)
    } else {
        let vals: Vec<Vec<i64>> = parts.iter().map(|c| c.int_values()).collect();
        Data::I64(interleave(&vals, outer)?)
    };
    Ok(Const::new(dims, data))
}

/// `Slice` of a constant along `axes` (all, in order, when absent), with
/// ONNX's clamping of starts and ends and any non-zero step.
pub(crate) fn slice(
    c: &Const,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Const, String> {
    let rank = c.dims.len();
    if starts.len() != ends.len() {
        return Err("Slice starts and ends differ in length".into());
    }
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?,
        None => (0..starts.len()).collect(),
    };
    if axes.len() != starts.len() || steps.is_some_and(|s| s.len() != starts.len()) {
        return Err("Slice axes, starts, ends and steps differ in length".into());
    }
    // Per axis: first index, step, count.
    let mut plan: Vec<(i64, i64, usize)> = c.dims.iter().map(|&d| (0, 1, d)).collect();
    for (k, &ax) in axes.iter().enumerate() {
        let dim = i64::try_from(c.dims[ax]).map_err(|_| "dimension too large")?;
        let step = steps.map_or(1, |s| s[k]);
        let norm = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
        let (first, last) = (norm(starts[k]), norm(ends[k]));
        let count = if step > 0 {
            let (s, e) = (first.clamp(0, dim), last.clamp(0, dim));
            ((e - s).max(0) as u64).div_ceil(step as u64)
        } else if step < 0 {
            let (s, e) = (first.clamp(0, dim - 1), last.clamp(-1, dim - 1));
            ((s - e).max(0) as u64).div_ceil(step.unsigned_abs())
        } else {
            return Err("Slice step 0".into());
        };
        let begin = if step > 0 {
            first.clamp(0, dim)
        } else {
            first.clamp(0, dim - 1)
        };
        plan[ax] = (begin, step, count as usize);
    }
    let dims: Vec<usize> = plan.iter().map(|p| p.2).collect();
    let n = numel(&dims).ok_or("shape too large")?;
    let mut strides = vec![1usize; rank];
    for k in (0..rank.saturating_sub(1)).rev() {
        strides[k] = strides[k + 1]
            .checked_mul(c.dims[k + 1])
            .ok_or("shape too large")?;
    }
    let mut sources = Vec::with_capacity(n);
    for flat in 0..n {
        let mut rest = flat;
        let mut at = 0i64;
        for k in (0..rank).rev() {
            let idx = (rest % dims[k]) as i64;
            rest /= dims[k];
            at += (plan[k].0 + idx * plan[k].1) * strides[k] as i64;
        }
        sources.push(usize::try_from(at).map_err(|_| "Slice index out of range")?);
    }
    take(c, dims, &sources)
}

/// `Transpose` of a constant by `perm` (reversed axes when absent).
pub(crate) fn transpose(c: &Const, perm: Option<&[i64]>) -> Result<Const, String> {
    let rank = c.dims.len();
    let perm: Vec<usize> = match perm {
        Some(p) => p.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    for &p in &perm {
        if std::mem::replace(&mut seen[p], true) {
            return Err(format!("Transpose perm {perm:?} repeats an axis"));
        }
    }
    if perm.len() != rank {
        return Err(format!("Transpose perm {perm:?} for rank {rank}"));
    }
    let dims: Vec<usize> = perm.iter().map(|&p| c.dims[p]).collect();
    let mut strides = vec![1usize; rank];
    for k in (0..rank.saturating_sub(1)).rev() {
        strides[k] = strides[k + 1]
            .checked_mul(c.dims[k + 1])
            .ok_or("shape too large")?;
    }
    let n = c.len();
    let mut sources = Vec::with_capacity(n);
    for flat in 0..n {
        let mut rest = flat;
        let mut at = 0;
        for k in (0..rank).rev() {
            at += (rest % dims[k]) * strides[perm[k]];
            rest /= dims[k];
        }
        sources.push(at);
    }
    take(c, dims, &sources)
}

/// The elements of `c` at `sources`, as a tensor of shape `dims`.
fn take(c: &Const, dims: Vec<usize>, sources: &[usize]) -> Result<Const, String> {
    fn pick<T: Copy>(v: &[T], sources: &[usize]) -> Result<Vec<T>, String> {
        sources
            .iter()
            .map(|&i| {
                v.get(i)
                    .copied()
                    .ok_or_else(|| "index out of range".to_string())
            })
            .collect()
    }
    let data = match &c.data {
        Data::F32(v) => Data::F32(pick(v, sources)?),
        Data::I64(v) => Data::I64(pick(v, sources)?),
    };
    Ok(Const::new(dims, data))
}

/// `Cast` of a constant to ONNX data type `to`.
pub(crate) fn cast(c: &Const, to_float: bool) -> Result<Const, String> {
    let data = if to_float {
        Data::F32(c.floats()?)
    } else {
        Data::I64(c.int_values())
    };
    Ok(Const::new(c.dims.clone(), data))
}

/// An elementwise `Add`/`Sub`/`Mul`/`Div` of two constants of the same shape
/// or where one has a single element.
pub(crate) fn binary(op: &str, a: &Const, b: &Const) -> Result<Const, String> {
    let dims = if a.dims == b.dims || b.len() == 1 && a.dims.len() >= b.dims.len() {
        a.dims.clone()
    } else if a.len() == 1 && b.dims.len() >= a.dims.len() {
        b.dims.clone()
    } else {
        return Err(format!(
            "{op} of constants shaped {:?} and {:?} is not supported",
            a.dims, b.dims
        ));
    };
    let n = numel(&dims).ok_or("shape too large")?;
    let at = |len: usize, i: usize| if len == 1 { 0 } else { i };
    match (&a.data, &b.data) {
        (Data::I64(x), Data::I64(y)) => {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                let (p, q) = (x[at(x.len(), i)], y[at(y.len(), i)]);
                if p == BATCH || q == BATCH {
                    return Err("arithmetic on the batch size is not supported".into());
                }
                let v = match op {
                    "Add" => p.checked_add(q),
                    "Sub" => p.checked_sub(q),
                    "Mul" => p.checked_mul(q),
                    _ => p.checked_div(q),
                };
                out.push(v.ok_or_else(|| format!("{op} of {p} and {q} overflows"))?);
            }
            Ok(Const::new(dims, Data::I64(out)))
        }
        _ => {
            let (x, y) = (a.floats()?, b.floats()?);
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                let (p, q) = (x[at(x.len(), i)], y[at(y.len(), i)]);
                out.push(match op {
                    "Add" => p + q,
                    "Sub" => p - q,
                    "Mul" => p * q,
                    _ => p / q,
                });
            }
            Ok(Const::new(dims, Data::F32(out)))
        }
    }
}
