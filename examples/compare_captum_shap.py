"""Captum references for GradientSHAP, LIME and KernelSHAP, with Captum's own draws.

Rebuilds the shipped CNN and residual model in torch from their model files
(export_pytorch.load: the same spec and weights, normalization inside the
model), runs Captum on the first digits of assets/mnist-sample, explained for
their labels, and records, beside each map, the random draws Captum made, so
the Rust tests (tests/it/shap.rs) can replay them through xai-audit's core
functions (GradientShap::attribute_with, Lime::attribute_with,
KernelShap::attribute_with):

- GradientShap(n_samples=5, stdevs=0.1) over 4 uniform-noise baselines
  (torch.rand) on the first 8 digits: the baseline indices
  (np.random.choice), the noise (torch.normal) and the alphas
  (np.random.uniform), recorded by wrapping those three functions, in the
  order Captum calls them;
- Lime() (SkLearnLasso(alpha=0.01), cosine exponential kernel of width 1,
  Bernoulli(0.5) samples) and KernelShap() on the first 32 digits, with a
  4x4-pixel grid feature mask (49 segments), baselines 0.0 and 100 samples
  (Captum's default of 25 leaves KernelShap's least squares under-determined
  and scipy's float32 minimum-norm solution at the mercy of round-off): the
  on/off vectors, recorded by wrapping the transform from the interpretable
  space, and the coefficient of every segment (the map is constant over each
  segment; checked here). Captum hands scikit-learn float32 arrays, and
  KernelShap's least squares with its 1e6 weights loses about 3e-3 of the
  largest coefficient to float32 round-off, so the fixture also carries
  kernel_shap/coefs_f64: the same fit by scikit-learn in float64 on Captum's
  own samples and scores.

    python examples/compare_captum_shap.py tests/fixtures/captum

writes mnist_cnn.shap.safetensors and mnist_resnet.shap.safetensors there
(see tests/fixtures/README.md for the tensors).
"""

import argparse
import os
import sys

import numpy as np
import torch
from captum.attr import GradientShap, KernelShap, Lime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_pytorch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATCH = 4
GSHAP_INPUTS, GSHAP_SAMPLES, GSHAP_STDEV, GSHAP_BASELINES = 8, 5, 0.1, 4
SURROGATE_INPUTS, SURROGATE_SAMPLES = 32, 100


def grid_mask(h, w, patch):
    """Segment index of every pixel, [1, 1, h, w], row-major patches."""
    cols = -(-w // patch)
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return torch.from_numpy((ys // patch) * cols + xs // patch).long()[None, None]


def gradient_shap(model, x, y, baselines):
    """Captum's GradientShap with its three draws recorded."""
    rec = {"index": [], "noise": [], "alphas": []}
    real_choice, real_uniform, real_normal = np.random.choice, np.random.uniform, torch.normal

    def choice(*a, **k):
        out = real_choice(*a, **k)
        rec["index"].append(np.asarray(out))
        return out

    def uniform(*a, **k):
        out = real_uniform(*a, **k)
        rec["alphas"].append(np.asarray(out))
        return out

    def normal(*a, **k):
        out = real_normal(*a, **k)
        rec["noise"].append(out.detach().clone())
        return out

    np.random.choice, np.random.uniform, torch.normal = choice, uniform, normal
    try:
        maps = GradientShap(model).attribute(
            x.clone(), baselines=baselines, n_samples=GSHAP_SAMPLES, stdevs=GSHAP_STDEV, target=y)
    finally:
        np.random.choice, np.random.uniform, torch.normal = real_choice, real_uniform, real_normal
    assert all(len(v) == 1 for v in rec.values()), {k: len(v) for k, v in rec.items()}
    return (maps.detach(), torch.from_numpy(rec["index"][0].astype(np.int64)),
            rec["noise"][0], torch.from_numpy(rec["alphas"][0].astype(np.float32)))


def surrogate(method, model, x, y, mask, m):
    """Captum's Lime or KernelShap with the on/off vectors and the model's
    scores recorded; returns (coefficients [N, m], masks [N, samples, m] as
    u8, scores [N, samples])."""
    samples, scores = [], []
    real = method.from_interp_rep_transform
    real_evaluate = method._evaluate_batch

    def transform(curr_sample, *a, **k):
        samples.append(curr_sample.detach().clone().reshape(-1))
        return real(curr_sample, *a, **k)

    def evaluate(*a, **k):
        out = real_evaluate(*a, **k)
        scores.append(out.detach().clone().reshape(-1))
        return out

    method.from_interp_rep_transform = transform
    method._evaluate_batch = evaluate
    maps = method.attribute(x.clone(), baselines=0.0, target=y, feature_mask=mask,
                            n_samples=SURROGATE_SAMPLES).detach()
    n = x.shape[0]
    masks = torch.stack(samples).reshape(n, SURROGATE_SAMPLES, m).to(torch.uint8)
    flat_mask = mask.reshape(-1)
    coefs = torch.zeros(n, m)
    for s in range(m):
        coefs[:, s] = maps.reshape(n, -1)[:, int((flat_mask == s).nonzero()[0])]
    painted = coefs[:, flat_mask].reshape(maps.shape)
    assert torch.equal(painted, maps.float()), "the map is the segment coefficients"
    return coefs, masks, torch.cat(scores).reshape(n, SURROGATE_SAMPLES)


def kernel_shap_f64(masks, scores):
    """KernelShap's fit redone in float64: scikit-learn's LinearRegression on
    Captum's own samples, scores and weights (1e6 for all on / all off),
    which Captum runs in float32."""
    from sklearn.linear_model import LinearRegression

    out = []
    for z, y in zip(masks.numpy().astype(np.float64), scores.numpy().astype(np.float64)):
        on = z.sum(1)
        w = np.where((on == 0) | (on == z.shape[1]), 1e6, 1.0)
        out.append(LinearRegression().fit(z, y, sample_weight=w).coef_)
    return torch.from_numpy(np.array(out))


def fixture(model_file, out):
    from safetensors.torch import save_file

    model = export_pytorch.load(os.path.join(ROOT, model_file))
    images = export_pytorch.read_idx(os.path.join(ROOT, "assets/mnist-sample/sample-images-idx3-ubyte.gz"))
    labels = export_pytorch.read_idx(os.path.join(ROOT, "assets/mnist-sample/sample-labels-idx1-ubyte.gz"))
    n = SURROGATE_INPUTS
    x_u8 = torch.from_numpy(images[:n].astype(np.uint8)).unsqueeze(1)
    x = x_u8.float() / 255.0
    y = torch.from_numpy(labels[:n].astype(np.int64))
    t = {"x_u8": x_u8, "labels": y}

    torch.manual_seed(0)
    np.random.seed(0)
    baselines = torch.rand((GSHAP_BASELINES,) + tuple(x.shape[1:]))
    g = GSHAP_INPUTS
    maps, index, noise, alphas = gradient_shap(model, x[:g], y[:g], baselines)
    t.update({"gradient_shap/baselines": baselines, "gradient_shap/index": index,
              "gradient_shap/noise": noise, "gradient_shap/alphas": alphas, "gradient_shap/maps": maps})

    mask = grid_mask(28, 28, PATCH)
    m = int(mask.max()) + 1
    for name, method in [("lime", Lime(model)), ("kernel_shap", KernelShap(model))]:
        coefs, masks, scores = surrogate(method, model, x, y, mask, m)
        if name == "kernel_shap":
            t["kernel_shap/coefs_f64"] = kernel_shap_f64(masks, scores)
        # Bit-packed along the segments (np.packbits: first segment in the
        # most significant bit), [N, samples, ceil(m / 8)].
        packed = np.packbits(masks.numpy().astype(bool), axis=-1)
        assert np.array_equal(np.unpackbits(packed, axis=-1, count=m), masks.numpy())
        t[f"{name}/coefs"], t[f"{name}/masks_packed"] = coefs, torch.from_numpy(packed)

    save_file({k: v.contiguous() for k, v in t.items()}, out)
    for k, v in sorted(t.items()):
        print(f"  {k:<26} {str(v.dtype):<14} {tuple(v.shape)}")
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="where the fixtures go (tests/fixtures/captum)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out_dir, exist_ok=True)
    import captum
    print(f"captum {captum.__version__}, torch {torch.__version__}")
    for stem in ["mnist_cnn", "mnist_resnet"]:
        fixture(f"assets/{stem}.safetensors", os.path.join(args.out_dir, f"{stem}.shap.safetensors"))


if __name__ == "__main__":
    main()
