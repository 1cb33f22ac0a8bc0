"""Zennit's LRP on the shipped models: the references for xai-audit's `lrp`.

Rebuilds each shipped model in torch (export_pytorch.load: the same spec
and weights), rearranges it into plain nn.Sequential blocks Zennit's
canonizers understand (each residual join a zennit.layer.Sum, as Zennit's
ResNetCanonizer makes it; batch norms merged by SequentialMergeBatchNorm),
feeds it the normalized input (so the box rule's bounds are the range
[0, 1] normalized, as xai-audit computes them) and runs zennit's Gradient
attributor with a composite, putting the target's logit on the output
(attr_output = logit * one-hot, as Captum's LRP and xai-audit do; Zennit's
examples put 1).

Zennit 0.5.1 is the newest release (there is no 1.0). Composites compared:
EpsilonPlusFlat, EpsilonGammaBox(low, high), EpsilonAlpha2Beta1Flat,
EpsilonPlus, all at their defaults (epsilon 1e-6, gamma 0.25, stabilizer
1e-6).

    python examples/compare_zennit.py --fixture tests/fixtures/zennit/lrp.safetensors

writes the maps for 32 digits of the shipped sample, explained for their
labels, for tests/it/lrp.rs; without --fixture it prints each map's sum
against the logit (conservation).
"""

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_pytorch  # noqa: E402

from zennit.attribution import Gradient  # noqa: E402
from zennit.canonizers import SequentialMergeBatchNorm  # noqa: E402
from zennit.composites import (EpsilonAlpha2Beta1Flat, EpsilonGammaBox, EpsilonPlus,  # noqa: E402
                               EpsilonPlusFlat)
from zennit.layer import Sum  # noqa: E402

class ExactMergeBatchNorm(SequentialMergeBatchNorm):
    """Zennit's canonizer, its emptied batch norm made an exact identity:
    Zennit leaves running_var = 1 with the norm's eps, which scales every
    merged activation by 1/sqrt(1 + eps) (5e-6) -- an artefact, not LRP."""

    def register(self, linears, batch_norm):
        self.eps = batch_norm.eps
        super().register(linears, batch_norm)
        batch_norm.eps = 0.0

    def remove(self):
        super().remove()
        self.batch_norm.eps = self.eps


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SumResidual(nn.Module):
    """activation(body(x) + shortcut(x)), the sum a zennit.layer.Sum."""

    def __init__(self, res):
        super().__init__()
        self.body = sequential(res.body)
        self.shortcut = sequential(res.shortcut) if res.shortcut is not None else None
        self.sum = Sum()
        self.activation = res.activation

    def forward(self, x):
        skip = x if self.shortcut is None else self.shortcut(x)
        y = self.sum(torch.stack([self.body(x), skip], dim=-1))
        return y if self.activation is None else self.activation(y)


def sequential(mods):
    out = []
    for m in mods:
        out.append(SumResidual(m) if isinstance(m, export_pytorch.Residual) else m)
    return nn.Sequential(*out)


def rebuilt(name):
    model = export_pytorch.load(os.path.join(ROOT, f"assets/mnist_{name}.safetensors")).eval()
    mean, std = model.input_mean.clone(), model.input_std.clone()
    return sequential(model._plan).eval(), model, mean, std


COMPOSITES = {
    "epsilon_plus_flat": lambda lo, hi, c: EpsilonPlusFlat(canonizers=c),
    "epsilon_gamma_box": lambda lo, hi, c: EpsilonGammaBox(low=lo, high=hi, canonizers=c),
    "epsilon_alpha2_beta1_flat": lambda lo, hi, c: EpsilonAlpha2Beta1Flat(canonizers=c),
    "epsilon_plus": lambda lo, hi, c: EpsilonPlus(canonizers=c),
}


def lrp(seq, xn, y, composite):
    xn = xn.clone().requires_grad_(True)

    def attr_output(out):
        return out * torch.eye(out.shape[1])[y]

    with Gradient(model=seq, composite=composite) as attributor:
        out, rel = attributor(xn, attr_output)
    return out.detach(), rel.detach()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixture", help="write the maps here (safetensors)")
    ap.add_argument("-n", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(1)
    images = export_pytorch.read_idx(os.path.join(ROOT, "assets/mnist-sample/sample-images-idx3-ubyte.gz"))
    labels = export_pytorch.read_idx(os.path.join(ROOT, "assets/mnist-sample/sample-labels-idx1-ubyte.gz"))
    n = args.n
    x = torch.from_numpy(images[:n].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels[:n].astype(np.int64))
    t = {"x_u8": torch.from_numpy(images[:n].copy()), "labels": y}
    for name in ["cnn", "resnet"]:
        seq, model, mean, std = rebuilt(name)
        xn = (x - mean) / std
        with torch.no_grad():
            ref = model(x)
            assert torch.allclose(seq(xn), ref, atol=1e-5), f"{name}: the rebuilt model differs"
        lo = float((0.0 - mean.flatten()[0]) / std.flatten()[0])
        hi = float((1.0 - mean.flatten()[0]) / std.flatten()[0])
        logit = ref[torch.arange(n), y]
        for comp, make in COMPOSITES.items():
            if name == "resnet" and comp == "epsilon_plus":
                continue
            out, rel = lrp(seq, xn, y, make(lo, hi, [ExactMergeBatchNorm()]))
            err = float((out - ref).abs().max()); assert err < 1e-4, f"{name}: canonized outputs differ by {err}"
            sums = rel.flatten(1).sum(1)
            print(f"{name:<7} {comp:<26} sum/logit median {float((sums / logit).median()):.4f} "
                  f"max|map| {float(rel.abs().max()):.3g}")
            t[f"{name}/{comp}"] = rel
    if args.fixture:
        from safetensors.torch import save_file
        os.makedirs(os.path.dirname(args.fixture), exist_ok=True)
        save_file({k: v.contiguous() for k, v in t.items()}, args.fixture)
        print(f"wrote {args.fixture} ({os.path.getsize(args.fixture)} bytes)")


if __name__ == "__main__":
    main()
