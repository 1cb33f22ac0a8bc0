//! From a loaded [`Dataset`] to model-ready tensors: choosing the data for a
//! model (the user's path, or the shipped sample when the model takes MNIST
//! digits), and slicing batches mapped to the model's input range.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::{load_with_notes, shipped_sample_with_notes, DataNotes, Dataset, LoadOptions};
use crate::error::{Error, Remedy, Result};

/// How to pick and fit the data for a model.
#[derive(Debug, Clone, Default)]
pub struct DataRequest<'a> {
    /// The user's data; `None` means the shipped MNIST sample.
    pub path: Option<&'a Path>,
    /// Resize images whose size differs from the model's.
    pub resize: bool,
    /// Take only N items (an IDX file's first N; an image folder's
    /// class-stratified N: see [`LoadOptions::limit`]).
    pub limit: Option<usize>,
    /// The class names the model's spec gives, in output order (its
    /// `classes`; `None` or empty when it names none): image-folder classes
    /// are matched to them by name.
    pub class_names: Option<&'a [String]>,
    /// Labels, layout and `.npz` keys for array data.
    pub arrays: super::arrays::ArrayOptions,
    /// The model's input range (`None`: `[0, 1]`): `float32` arrays must
    /// lie inside it.
    pub range: Option<(f32, f32)>,
}

/// Loads the data for a model taking `[C, H, W]` inputs with `num_classes`
/// outputs. Labels outside the model's classes are an error naming the item
/// and its class.
pub fn load_for_model(
    req: &DataRequest,
    input_shape: [usize; 3],
    num_classes: usize,
) -> Result<Dataset> {
    load_for_model_with_notes(req, input_shape, num_classes).map(|(data, _)| data)
}

/// [`load_for_model`], and what loading learnt about the data (how the items
/// were drawn, warnings) for the report.
pub fn load_for_model_with_notes(
    req: &DataRequest,
    input_shape: [usize; 3],
    num_classes: usize,
) -> Result<(Dataset, DataNotes)> {
    let [c, h, w] = input_shape;
    let opts = LoadOptions {
        channels: c,
        size: Some((h, w)),
        resize: req.resize,
        limit: req.limit,
        class_names: req.class_names.map(<[String]>::to_vec),
        num_classes: Some(num_classes),
        arrays: req.arrays.clone(),
        range: req.range.unwrap_or((0.0, 1.0)),
    };
    let (data, notes) = match req.path {
        Some(path) => load_with_notes(path, &opts)?,
        None => {
            if input_shape != [1, 28, 28] {
                return Err(Error::Invalid(format!(
                    "the model takes {c}×{h}×{w} inputs but the shipped sample holds 1×28×28 MNIST digits"
                ))
                .remedied(Remedy::PassData));
            }
            shipped_sample_with_notes(&opts)?
        }
    };
    data.labels_in_range(num_classes)?;
    Ok((data, notes))
}

/// Items `start..start + len` as a `[len, C, H, W]` tensor, pixels mapped
/// from `[0, 1]` to the model's `range`.
pub fn batch_tensor(data: &Dataset, start: usize, len: usize, range: (f32, f32)) -> Result<Tensor> {
    if start + len > data.len() {
        return Err(Error::Invalid(format!(
            "batch {start}..{} outside the {} items of {}",
            start + len,
            data.len(),
            data.source
        )));
    }
    let per = data.item_len();
    let slice = &data.pixels[start * per..(start + len) * per];
    let [_, c, h, w] = data.shape;
    let (lo, hi) = range;
    let tensor = if (lo, hi) == (0.0, 1.0) {
        Tensor::from_slice(slice, (len, c, h, w), &Device::Cpu)?
    } else {
        let mapped: Vec<f32> = slice.iter().map(|&p| lo + p * (hi - lo)).collect();
        Tensor::from_vec(mapped, (len, c, h, w), &Device::Cpu)?
    };
    Ok(tensor)
}

/// `(first, len)` of each batch of `batch_size` (at least 1) over `n`
/// items, in order; the last may be shorter.
pub fn batch_ranges(n: usize, batch_size: usize) -> impl Iterator<Item = (usize, usize)> {
    let size = batch_size.max(1);
    (0..n)
        .step_by(size)
        .map(move |first| (first, size.min(n - first)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_sample_is_used_only_for_mnist_shaped_models() {
        let req = DataRequest {
            limit: Some(5),
            ..Default::default()
        };
        let data = load_for_model(&req, [1, 28, 28], 10).unwrap();
        assert_eq!(data.shape, [5, 1, 28, 28]);
        let err = load_for_model(&req, [3, 32, 32], 10).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Remedied {
                    remedy: Remedy::PassData,
                    ..
                }
            ),
            "{err}"
        );
        let err = load_for_model(&req, [1, 28, 28], 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("label"), "{err}");
    }

    #[test]
    fn batches_map_pixels_to_the_model_range() {
        let data = load_for_model(
            &DataRequest {
                limit: Some(3),
                ..Default::default()
            },
            [1, 28, 28],
            10,
        )
        .unwrap();
        let unit = batch_tensor(&data, 1, 2, (0.0, 1.0)).unwrap();
        let wide = batch_tensor(&data, 1, 2, (0.0, 255.0)).unwrap();
        let diff = ((unit * 255.0).unwrap() - wide)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-4);
        assert!(batch_tensor(&data, 2, 2, (0.0, 1.0)).is_err());
    }

    #[test]
    fn batch_ranges_cover_the_items_once() {
        let ranges: Vec<_> = batch_ranges(7, 3).collect();
        assert_eq!(ranges, [(0, 3), (3, 3), (6, 1)]);
        assert_eq!(batch_ranges(0, 3).count(), 0);
    }
}
