//! The work a benchmark reports its rate against: the nominal FLOPs of one
//! forward pass, counted from the spec's shapes so that it does not depend
//! on which engine runs the model or how its kernels compute (a Winograd
//! convolution does fewer multiplies, and then runs above the nominal rate).
//! Two FLOPs per multiply-add; only convolutions and linear layers count, as
//! in PyTorch's and the literature's figures (a ResNet-18 on 3×32×32 is 0.56 G
//! multiply-adds).

use crate::error::{Error, Result};
use crate::model::spec::LayerSpec;
use crate::model::Network;

/// FLOPs of one forward pass of `net` on one input, from the spec's shapes.
pub fn forward_flops_per_sample(net: &Network) -> Result<f64> {
    let spec = net.spec();
    let infos = spec.layer_infos().map_err(Error::Invalid)?;
    let macs: f64 = spec
        .nodes
        .iter()
        .zip(&infos)
        .map(
            |(node, info)| match (&node.op, info.output_shape.as_slice()) {
                // Each output value is a dot product over `in/groups · kh · kw` inputs.
                (
                    LayerSpec::Conv2d {
                        in_channels,
                        out_channels,
                        kernel_size,
                        groups,
                        ..
                    },
                    [_, oh, ow],
                ) => {
                    (oh * ow
                        * out_channels
                        * (in_channels / groups.max(&1))
                        * kernel_size.h
                        * kernel_size.w) as f64
                }
                (
                    LayerSpec::Linear {
                        in_features,
                        out_features,
                        ..
                    },
                    _,
                ) => (in_features * out_features) as f64,
                _ => 0.0,
            },
        )
        .sum();
    Ok(2.0 * macs)
}

/// FLOPs of PGD with `steps` steps on one input: each step a forward pass
/// and an input gradient (which costs what the forward does: every product's
/// input gradient is a product of the same size), then one forward pass that
/// scores the result. The clean forward pass an audit needs anyway is not
/// counted, so the figure is the same for every tool.
pub fn pgd_flops_per_sample(forward: f64, steps: usize) -> f64 {
    steps as f64 * 2.0 * forward + forward
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{load_model_with, ModelOptions};

    fn forward_macs(path: &str) -> f64 {
        let loaded = load_model_with(std::path::Path::new(path), &ModelOptions::default()).unwrap();
        forward_flops_per_sample(&loaded.network).unwrap() / 2.0
    }

    /// Multiply-adds counted by hand from `xai-audit inspect`'s layer table.
    #[test]
    fn shipped_cnn_counts_its_convolutions_and_linears() {
        let convs = 28 * 28 * 16 * 9 + 14 * 14 * 32 * 16 * 9;
        let linears = 1568 * 128 + 128 * 10;
        assert_eq!(
            forward_macs("assets/mnist_cnn.safetensors"),
            f64::from(convs + linears)
        );
    }

    /// Residual bodies and projection shortcuts count, a grouped convolution
    /// counts `in/groups` inputs per output, pools and norms count nothing.
    #[test]
    fn residual_grouped_and_strided_layers_count() {
        let stem = 12 * 12 * 8 * 3 * 9;
        let block1 = 6 * 6 * 8 * 4 * 9 + 6 * 6 * 8 * 8 * 9;
        let block2 = 3 * 3 * 12 * 8 * 9 + 3 * 3 * 12 * 12 * 9 + 3 * 3 * 12 * 8;
        let head = 48 * 16 + 16 * 12 + 12 * 5;
        assert_eq!(
            forward_macs("tests/fixtures/tiny_all_ops.safetensors"),
            f64::from(stem + block1 + block2 + head)
        );
    }

    #[test]
    fn pgd_counts_each_step_twice_and_one_final_forward() {
        assert_eq!(pgd_flops_per_sample(3.0, 10), 63.0);
        assert_eq!(pgd_flops_per_sample(3.0, 0), 3.0);
    }
}
