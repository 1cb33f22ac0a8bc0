#!/usr/bin/env python3
"""torchvision classifiers exported to ONNX, with PyTorch and torchattacks references.

    python examples/onnx_zoo.py [OUTDIR] [--models resnet18,...]   # default target/onnx-zoo

Not run in CI (minutes of CPU, ~200 MB of files). For each of torchvision's
``resnet18``, ``mobilenet_v2``, ``densenet121`` and ``efficientnet_b0``
(``weights=None``: seeded random initialization, nothing is downloaded;
1,000 classes; eval mode) at 3×64×64 in [0, 1]:

* BatchNorm affine parameters are drawn at random (weight in [0.75, 1.25],
  bias N(0, 0.1²)), then the running statistics are calibrated on random
  inputs (cumulative averages over four batches with only the BatchNorms in
  train mode), so every BatchNorm is a non-trivial affine map and the
  activations stay O(1); the classifier's last layer is rescaled so that the logits'
  per-input standard deviation is 2 (torchvision's init leaves
  MobileNet's logits within a few tenths, EfficientNet's at ±40).
* ``<model>.opset17.onnx`` (TorchScript exporter, ``dynamo=False``) and
  ``<model>.dynamo.onnx`` (``dynamo=True``, opset 18, weights embedded), both
  with a dynamic batch dimension.
* ``x.npy`` (float32 [32, 3, 64, 64]): the first 32 of 128 seeded uniform
  inputs on which no model's two top logits are within 5e-3 (near-ties
  would make the labels depend on rounding; so x depends on --models).
  ``<model>.y.npy`` (int64, the model's own argmax) and
  ``<model>.ref.safetensors`` (float32: ``x``, ``labels``, ``logits``,
  ``logits_ort.opset17`` and ``logits_ort.dynamo`` (onnxruntime on each file,
  one thread), ``grad_ce``, ``grad_logit``, ``grad_margin``, with the
  conventions of tests/fixtures/README.md, and ``grad_ce.f64``,
  ``grad_logit.f64``, ``grad_margin.f64``: the same gradients computed by
  PyTorch in float64, the exact reference float32 PyTorch is itself off from).
* PGD-10: ``torchattacks.PGD(model, eps=8/255, alpha=2/255, steps=10,
  random_start=False)`` on the 32 inputs in one batch; ``<model>.pgd_pred.npy``
  (int64) holds the prediction at its adversarial (its LAST iterate). xai-audit
  keeps the BEST iterate per input instead (a misclassified point beats a
  correct one, then the higher cross-entropy; the clean input counts as
  iterate 0), so the same iterates are replayed here and
  ``<model>.pgd_iter_pred.npy`` ([11, 32]: the prediction at iterates 0-10)
  and ``<model>.pgd_best_pred.npy`` (xai-audit's rule applied to them) are
  written too: a disagreement with torchattacks that
  ``pgd_best_pred`` reproduces is the protocol's, not a numerical one.
  ``<model>.pgd_f64_pred.npy`` and ``<model>.pgd_f64_best_pred.npy``: the
  same attack run in float64 from the same weights, the noise floor of a
  point-by-point comparison: on these random networks PGD's path at 8/255
  is chaotic (the predicted class changes at most steps), and float64
  PyTorch ends on a different class than float32 PyTorch on most of
  MobileNet's and DenseNet's inputs.
  The same for eps 0.1/255, step 0.025/255 (``<model>.pgd_small_*.npy``):
  random networks are so fragile that 1/255 already breaks every input of
  every model; at 0.1/255 about a fifth of ResNet-18's and EfficientNet's
  inputs stay robust (MobileNet's and DenseNet's still all break), so the
  robust/broken split is tested too.
* ``pgd10.toml``: the xai-audit plan with both attacks, in that order.

The comparison is ``examples/onnx_zoo.sh OUTDIR`` (compare_onnx on every
file, then ``xai-audit run`` with pgd10.toml and the agreement count).
Needs torch, torchvision, torchattacks, onnx, onnxruntime, onnxscript,
safetensors, numpy.
"""

import argparse
import copy
import io
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchattacks
import torchvision
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_pytorch import reference_tensors  # noqa: E402

MODELS = ["resnet18", "mobilenet_v2", "densenet121", "efficientnet_b0"]
SIZE = 64
COUNT = 32
STEPS = 10
# (plan entry name, file prefix, eps, step): the 8/255 with
# torchattacks' customary 2/255 step, where a random network is broken on
# every input, and 0.1/255 (step 0.025/255), where some inputs stay robust,
# so the agreement also tests the robust/broken split.
ATTACKS = [("pgd10-linf-8-255", "pgd", 8 / 255, 2 / 255),
           ("pgd10-linf-0.1-255", "pgd_small", 0.1 / 255, 0.025 / 255)]
TARGET_LOGIT_STD = 2.0
MIN_TOP2_GAP = 5e-3

PLAN = f"""# PGD-10 as torchattacks.PGD(model, eps=..., alpha=..., steps=10,
# random_start=False): L-inf, cross-entropy (the only PGD loss), one restart;
# eps 8/255 with step 2/255, and eps 0.1/255 with step 0.025/255.
# Written by examples/onnx_zoo.py; run by examples/onnx_zoo.sh.
seed = 0
batch_size = {COUNT}
""" + "".join(f"""
[[attack]]
name = "{name}"
kind = "pgd"
norm = "linf"
eps = {eps!r}
step_size = {alpha!r}
steps = {STEPS}
random_start = false
restarts = 1
""" for name, _, eps, alpha in ATTACKS)


def last_linear(model):
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def build(name, seed):
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None)
    # Random affine parameters first, then the running statistics
    # calibrated on random inputs (cumulative averages over four batches with
    # only the BatchNorms in train mode: stochastic depth and dropout stay
    # off, as in eval), so each BatchNorm normalizes what it really sees and
    # the activations stay O(1) through the residual stacks.
    model.eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(c) * 0.1)
                m.reset_running_stats()
                m.momentum = None
                m.train()
        for _ in range(4):
            model(torch.rand(16, 3, SIZE, SIZE))
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    return model


def spread(z):
    """Mean per-input standard deviation and the largest max-min of the logits."""
    return z.std(1).mean().item(), (z.max(1).values - z.min(1).values).max().item()


def export_torchscript(model, x, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})


def export_dynamo(model, x, path):
    batch = torch.export.Dim("N", min=1, max=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = io.StringIO()
        stdout, sys.stdout = sys.stdout, out
        try:
            program = torch.onnx.export(model, (x,), dynamo=True, opset_version=18,
                                        input_names=["input"], output_names=["logits"],
                                        dynamic_shapes=({0: batch},), external_data=False)
        finally:
            sys.stdout = stdout
    program.save(str(path), external_data=False)


def ort_logits(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])


def replay_pgd(model, x, y, eps, alpha):
    """torchattacks' PGD step by step: the prediction at every iterate, the
    last iterate, and xai-audit's best-iterate prediction."""
    adv = x.clone()
    preds, best_pred = [], None
    best_success = torch.zeros(len(y), dtype=torch.bool)
    best_loss = torch.full((len(y),), -float("inf"))
    for step in range(STEPS + 1):
        adv.requires_grad_(True)
        z = model(adv)
        pred = z.argmax(1)
        preds.append(pred.detach())
        loss_each = F.cross_entropy(z.detach(), y, reduction="none")
        success = pred != y
        better = (success & ~best_success) | ((success == best_success) & (loss_each > best_loss))
        best_pred = pred.clone() if best_pred is None else torch.where(better, pred, best_pred)
        best_success = torch.where(better, success, best_success)
        best_loss = torch.where(better, loss_each, best_loss)
        if step == STEPS:
            break
        cost = F.cross_entropy(z, y)
        (grad,) = torch.autograd.grad(cost, adv)
        adv = adv.detach() + alpha * grad.sign()
        delta = torch.clamp(adv - x, min=-eps, max=eps)
        adv = torch.clamp(x + delta, min=0, max=1).detach()
    return torch.stack(preds), adv.detach(), best_pred


def pick_inputs(models):
    """The first COUNT of 4·COUNT seeded uniform inputs on which no model's
    two top logits are within MIN_TOP2_GAP (there the label would be decided
    by rounding, and a correct implementation could disagree with PyTorch's
    argmax)."""
    torch.manual_seed(12345)
    candidates = torch.rand(4 * COUNT, 3, SIZE, SIZE)
    keep = torch.ones(len(candidates), dtype=torch.bool)
    for model in models.values():
        with torch.no_grad():
            top2 = model(candidates).topk(2, 1).values
        keep &= (top2[:, 0] - top2[:, 1]) >= MIN_TOP2_GAP
    chosen = torch.nonzero(keep).flatten()[:COUNT]
    if len(chosen) < COUNT:
        raise SystemExit(f"only {len(chosen)} candidate inputs without near-ties")
    print(f"inputs: the first {COUNT} of {len(candidates)} seeded candidates whose top-2 logit gap "
          f"is >= {MIN_TOP2_GAP} for every model ({int((~keep[:chosen[-1] + 1]).sum())} skipped)")
    return candidates[chosen].contiguous()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", nargs="?", default="target/onnx-zoo")
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "pgd10.toml").write_text(PLAN)

    models = {}
    torch.manual_seed(999)
    probe = torch.rand(COUNT, 3, SIZE, SIZE)
    for seed, name in enumerate(args.models.split(",")):
        model = build(name, seed)
        with torch.no_grad():
            before = spread(model(probe))
            factor = TARGET_LOGIT_STD / before[0]
            fc = last_linear(model)
            fc.weight.mul_(factor)
            fc.bias.mul_(factor)
        print(f"{name}: logit std {before[0]:.4f} -> {TARGET_LOGIT_STD} (last layer x{factor:.2f})", flush=True)
        models[name] = model
    x = pick_inputs(models)
    np.save(outdir / "x.npy", x.numpy())

    summary = []
    for name, model in models.items():
        t0 = time.time()
        with torch.no_grad():
            z = model(x)
        labels = z.argmax(1)
        top2 = z.topk(2, 1).values
        std, maxmin = spread(z)
        print(f"{name}: logit std {std:.3f}, largest max-min {maxmin:.2f}, max |logit| {z.abs().max():.2f}, "
              f"smallest top-2 gap {(top2[:, 0] - top2[:, 1]).min():.4f}, "
              f"{len(labels.unique())} distinct labels", flush=True)
        np.save(outdir / f"{name}.y.npy", labels.numpy().astype(np.int64))

        ref = reference_tensors(model, x, labels)
        # The float64 gradients: the exact ones up to rounding, against which
        # float32 PyTorch's own error shows (the cosine floor of a float32
        # comparison on deep ReLU6/concat networks is below 0.9999).
        ref64 = reference_tensors(copy.deepcopy(model), x, labels, dtype=torch.float64)
        for k in ("grad_ce", "grad_logit", "grad_margin"):
            ref[f"{k}.f64"] = ref64[k]
        for tag, export in [("opset17", export_torchscript), ("dynamo", export_dynamo)]:
            path = outdir / f"{name}.{tag}.onnx"
            try:
                export(model, x[:2], path)
                zo = ort_logits(path, x)
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"  {path.name}: FAILED {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                summary.append((name, tag, "export failed", None, None))
                continue
            ref[f"logits_ort.{tag}"] = zo.float().contiguous()
            d = (zo - ref["logits"]).abs().max().item()
            rel = d / ref["logits"].abs().max().item()
            print(f"  {path.name}: {path.stat().st_size} bytes, max|ort - torch| {d:.2e} ({rel:.2e} relative)",
                  flush=True)
            summary.append((name, tag, path.stat().st_size, d, rel))
        save_file({k: v.contiguous() for k, v in ref.items()}, str(outdir / f"{name}.ref.safetensors"))

        model64 = copy.deepcopy(model).double()
        for attack_name, prefix, eps, alpha in ATTACKS:
            atk = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=STEPS, random_start=False)
            adv = atk(x, labels)
            with torch.no_grad():
                pgd_pred = model(adv).argmax(1)
            iter_pred, last, best_pred = replay_pgd(model, x, labels, eps, alpha)
            replay_diff = (last - adv).abs().max().item()
            np.save(outdir / f"{name}.{prefix}_pred.npy", pgd_pred.numpy().astype(np.int64))
            np.save(outdir / f"{name}.{prefix}_iter_pred.npy", iter_pred.numpy().astype(np.int64))
            np.save(outdir / f"{name}.{prefix}_best_pred.npy", best_pred.numpy().astype(np.int64))
            # The noise floor: the same attack in float64 from the same
            # weights. Where PGD's path is chaotic (a random network at
            # 8/255), rounding alone changes the adversarial class.
            iter64, _, best64 = replay_pgd(model64, x.double(), labels, eps, alpha)
            np.save(outdir / f"{name}.{prefix}_f64_pred.npy", iter64[-1].numpy().astype(np.int64))
            np.save(outdir / f"{name}.{prefix}_f64_best_pred.npy", best64.numpy().astype(np.int64))
            robust = (pgd_pred == labels).float().mean().item()
            print(f"  {attack_name}: torchattacks robust accuracy {100 * robust:.1f}%, "
                  f"best-iterate {100 * (best_pred == labels).float().mean():.1f}%, "
                  f"last iterate's prediction = best iterate's on {(best_pred == pgd_pred).sum()}/{COUNT}, "
                  f"replay vs torchattacks max |Δx| {replay_diff:.1e}; float64 vs float32 PyTorch: "
                  f"last iterate's prediction equal on {(iter64[-1] == pgd_pred).sum()}/{COUNT}, "
                  f"best iterate's on {(best64 == best_pred).sum()}/{COUNT}", flush=True)
        print(f"  {time.time() - t0:.0f} s", flush=True)

    print(f"\n{'model':<16} {'exporter':<8} {'bytes':>10} {'max|ort-torch|':>15} {'relative':>10}")
    for name, tag, size, d, rel in summary:
        if d is None:
            print(f"{name:<16} {tag:<8} {size}")
        else:
            print(f"{name:<16} {tag:<8} {size:>10} {d:>15.2e} {rel:>10.2e}")


if __name__ == "__main__":
    main()
