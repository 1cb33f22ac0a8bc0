//! Models: the architecture spec, loading safetensors weights, the layers and
//! their PyTorch-exact custom ops, and the [`Classifier`] boundary, where a
//! one-output network becomes a binary classifier ([`BinaryLogits`]).

pub mod binary;
pub mod classifier;
pub mod deeplift;
pub mod draw;
pub(crate) mod head;
pub mod layers;
pub mod load;
pub mod lrp;
pub mod onnx;
pub mod ops;
pub mod reinit;
pub mod save;
pub mod skeleton;
pub mod spec;

pub use binary::BinaryLogits;
pub use classifier::{Classifier, InputGradient, LayerGradient, LogitLoss, Network, Objective};
pub use load::{load_model, load_model_from_bytes, load_model_with, LoadedModel, ModelOptions};
pub use save::{convert, save_model, Converted};
pub use spec::ArchSpec;
