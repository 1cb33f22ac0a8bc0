"""References for the faithfulness metrics: ROAD's imputation and Captum's infidelity.

Writes tests/fixtures/captum/faithfulness.safetensors, which tests/it/faithfulness.rs
replays through xai-audit's core functions:

- road/*: ROAD's noisy linear imputation (Rong et al. 2022), noise 0, on the
  first 4 digits of assets/mnist-sample, each with its own mask (a random 10%,
  30%, 60% and 90% of the pixels, numpy seed 0). The sparse system is built
  here independently of the Rust code with scipy.sparse, following the
  authors' NoisyLinearImputer (github.com/tleemann/road_evaluation,
  road/imputations.py): for each removed pixel i,
  d_i x_i - sum_{j removed} w_ij x_j = sum_{k kept} w_ik v_k, where the sums
  run over the 8 neighbours inside the image (direct 1/6, diagonal 1/12) and
  d_i is the sum of the in-image neighbours' weights; solved with spsolve
  (a direct LU) in float64.
- <stem>/*: captum.metrics.infidelity (Captum 0.9) for the shipped CNN and
  residual model on the first 32 digits explained for their labels, with
  Captum's Saliency (abs=False) maps, 10 perturbations per input, normalize
  False and True. The perturbations I are Gaussian, sigma 0.1, quantized to
  sigma/32 steps so they travel as bytes (perturbations_u8: I = 0.1 * (q - 128)
  / 32), and handed to Captum by the perturb_func, which returns (I, x - I).

    python examples/compare_faithfulness.py tests/fixtures/captum

(needs torch, captum 0.9, scipy, safetensors, numpy.)
"""

import argparse
import os
import sys

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_pytorch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROAD_INPUTS, ROAD_FRACTIONS = 4, [0.1, 0.3, 0.6, 0.9]
INFIDELITY_INPUTS, SAMPLES, SIGMA, STEPS_PER_SIGMA = 32, 10, 0.1, 32
DIRECT, DIAGONAL = 1.0 / 6.0, 1.0 / 12.0
OFFSETS = [(dy, dx, DIAGONAL if dy and dx else DIRECT)
           for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def impute(image, removed):
    """Linear imputation of one [C, H, W] float64 image; removed: [H, W] bool."""
    c, h, w = image.shape
    unknowns = np.flatnonzero(removed.ravel())
    index = -np.ones(h * w, dtype=np.int64)
    index[unknowns] = np.arange(len(unknowns))
    rows, cols, vals = [], [], []
    rhs = np.zeros((len(unknowns), c))
    flat = image.reshape(c, -1)
    for u, p in enumerate(unknowns):
        y, x = divmod(p, w)
        total = 0.0
        for dy, dx, weight in OFFSETS:
            ny, nx = y + dy, x + dx
            if not (0 <= ny < h and 0 <= nx < w):
                continue
            q = ny * w + nx
            total += weight
            if removed[ny, nx]:
                rows.append(u)
                cols.append(index[q])
                vals.append(-weight)
            else:
                rhs[u] += weight * flat[:, q]
        rows.append(u)
        cols.append(u)
        vals.append(total)
    a = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(len(unknowns), len(unknowns)))
    solution = scipy.sparse.linalg.spsolve(a, rhs).reshape(len(unknowns), c)
    out = flat.copy()
    out[:, unknowns] = solution.T
    return out.reshape(c, h, w)


def digits(n):
    images = export_pytorch.read_idx(os.path.join(ROOT, "assets/mnist-sample/sample-images-idx3-ubyte.gz"))
    labels = export_pytorch.read_idx(os.path.join(ROOT, "assets/mnist-sample/sample-labels-idx1-ubyte.gz"))
    x_u8 = torch.from_numpy(images[:n].astype(np.uint8)).unsqueeze(1)
    return x_u8, torch.from_numpy(labels[:n].astype(np.int64))


def road_references(t):
    x_u8, _ = digits(ROAD_INPUTS)
    rng = np.random.default_rng(0)
    masks, imputed = [], []
    for i, fraction in enumerate(ROAD_FRACTIONS):
        k = int(round(fraction * 784))
        removed = np.zeros(784, dtype=bool)
        removed[rng.permutation(784)[:k]] = True
        removed = removed.reshape(28, 28)
        image = x_u8[i].numpy().astype(np.float64) / 255.0
        out = impute(image, removed)
        assert np.array_equal(out[:, ~removed], image[:, ~removed])
        masks.append(removed.astype(np.uint8))
        imputed.append(out)
    t["road/x_u8"] = x_u8
    t["road/masks"] = torch.from_numpy(np.stack(masks))
    t["road/imputed"] = torch.from_numpy(np.stack(imputed))


def infidelity_references(t):
    from captum.attr import Saliency
    from captum.metrics import infidelity

    x_u8, y = digits(INFIDELITY_INPUTS)
    x = x_u8.float() / 255.0
    rng = np.random.default_rng(1)
    q = np.clip(np.round(rng.standard_normal((INFIDELITY_INPUTS, SAMPLES, 1, 28, 28)) * STEPS_PER_SIGMA), -127, 127)
    q_u8 = (q + 128).astype(np.uint8)
    noise = torch.from_numpy(SIGMA * (q_u8.astype(np.float32) - 128) / STEPS_PER_SIGMA)
    t["infidelity/x_u8"], t["infidelity/labels"] = x_u8, y
    t["infidelity/perturbations_u8"] = torch.from_numpy(q_u8)
    rows = noise.reshape(INFIDELITY_INPUTS * SAMPLES, 1, 28, 28)

    def perturb(inputs):
        # Captum repeats each input SAMPLES times in a row (repeat_interleave).
        assert inputs.shape[0] == rows.shape[0], inputs.shape
        return rows, inputs - rows

    for stem in ["mnist_cnn", "mnist_resnet"]:
        model = export_pytorch.load(os.path.join(ROOT, f"assets/{stem}.safetensors"))
        maps = Saliency(model).attribute(x, target=y, abs=False).detach()
        t[f"{stem}/saliency"] = maps
        for normalize in (False, True):
            values = infidelity(model, perturb, x, maps, target=y, n_perturb_samples=SAMPLES,
                                max_examples_per_batch=None, normalize=normalize)
            key = "infidelity_normalized" if normalize else "infidelity"
            t[f"{stem}/{key}"] = values.detach().double()
            print(f"  {stem} {key}: mean {values.mean():.4f}, min {values.min():.3e}, max {values.max():.3e}")


def main():
    from safetensors.torch import save_file

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="where the fixture goes (tests/fixtures/captum)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import captum
    print(f"captum {captum.__version__}, torch {torch.__version__}, scipy {scipy.__version__}")
    t = {}
    road_references(t)
    infidelity_references(t)
    out = os.path.join(args.out_dir, "faithfulness.safetensors")
    os.makedirs(args.out_dir, exist_ok=True)
    save_file({k: v.contiguous() for k, v in t.items()}, out)
    for k, v in sorted(t.items()):
        print(f"  {k:<32} {str(v.dtype):<14} {tuple(v.shape)}")
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
