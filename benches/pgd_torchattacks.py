"""PGD L-inf throughput of torchattacks on PyTorch, on the model and inputs
`xai-audit bench` uses: the torch model is rebuilt from the safetensors file's
own spec (or --arch) and weights (examples/export_pytorch.load), nothing is
exported anew, and the inputs are read as src/data/ reads them
(benches/bench_inputs.py), their digest printed to prove it.

    python benches/pgd_torchattacks.py MODEL [--arch SPEC.json] [--data PATH]
        [--limit N] [--batch-size B] [--steps S] [--eps E] [--step-size A]
        [--threads T]

Defaults are `xai-audit bench`'s: the shipped 1,000 digits, batch 100,
PGD-40, eps 0.1, step 0.01 (in the model's input units), no random start.
Timing covers the attack and one final forward per batch, not loading.
An input counts as robust when no iterate, the clean input included, is
misclassified, as xai-audit's PGD counts it (it keeps the best iterate);
torchattacks' own last-iterate figure is printed beside it.
Prints, one item a line:

    torchattacks <images/s> images/s robust <pct>% (last iterate <pct>%; versions, ...)
    inputs <N>x<C>x<H>x<W> sha256 <hex>
    work <MFLOP per forward> MFLOP per forward, <MFLOP per image> MFLOP per image
    hot path <GFLOP/s> GFLOP/s
    torch SGEMM peak <GFLOP/s> GFLOP/s (1024^3, <T> threads)
    peak RSS <MiB> MiB (ru_maxrss)

The FLOP count is the one src/bench/flops.rs makes (2 per multiply-add of
convolutions and linear layers; PGD-S = S x (forward + input gradient) + a
final forward, an input gradient costing a forward), counted here with hooks
as a check. Run by benches/pgd_vs_torchattacks.sh, which alternates it with
`xai-audit bench`.
"""

import argparse
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torchattacks

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
sys.path.insert(0, HERE)
import export_pytorch  # noqa: E402
from bench_inputs import inputs_digest, load_inputs  # noqa: E402


class FromUnit(nn.Module):
    """The model on inputs in [0, 1], for a spec whose input range is
    [lo, hi]: torchattacks clamps to [0, 1], so eps and the step are divided
    by hi - lo, which is the same attack."""

    def __init__(self, model, lo, hi):
        super().__init__()
        self.model, self.lo, self.span = model, lo, hi - lo

    def forward(self, x):
        return self.model(self.lo + x * self.span)


class Tracker(nn.Module):
    """Notes which inputs of the batch under attack any forward pass
    misclassifies. xai-audit's PGD keeps the best iterate (src/attack/mod.rs
    `BestTracker`), so it counts an input broken when the clean input or any
    iterate is misclassified; torchattacks returns the last iterate. Watching
    the forward passes torchattacks makes anyway counts robustness the same
    way at no extra cost."""

    def __init__(self, model):
        super().__init__()
        self.model, self.labels, self.broken = model, None, None

    def watch(self, labels):
        self.labels, self.broken = labels, torch.zeros(len(labels), dtype=torch.bool)

    def forward(self, x):
        z = self.model(x)
        if self.labels is not None and len(z) == len(self.labels):
            self.broken |= z.detach().argmax(1) != self.labels
        return z


def forward_flops(model, shape):
    """2 x the multiply-adds of one forward pass's convolutions and linear
    layers on one input of `shape` [C, H, W]."""
    macs = [0]

    def hook(mod, args, out):
        if isinstance(mod, nn.Conv2d):
            per_out = mod.weight[0].numel()       # in/groups x kh x kw
            macs[0] += out[0].numel() * per_out
        else:
            macs[0] += out[0].numel() * mod.in_features

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros([1] + list(shape)))
    for h in hooks:
        h.remove()
    return 2.0 * macs[0]


def sgemm_peak(n=1024):
    """Best of three n x n x n float32 products, GFLOP/s."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--arch", help="architecture spec JSON (default: the file's metadata, "
                                   "then <stem>.arch.json)")
    ap.add_argument("--data", help="IDX images file, folder with an IDX pair, or image folder "
                                   "(default: the shipped 1,000 digits)")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--step-size", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model = export_pytorch.load(args.model, args.arch).eval()
    spec = model.spec
    x_np, y_np = load_inputs(args.data, spec, max(args.limit, 1))
    lo, hi = (float(v) for v in spec["input"].get("range", [0.0, 1.0]))
    attacked = model if (lo, hi) == (0.0, 1.0) else FromUnit(model, lo, hi).eval()
    x_all, y_all = torch.from_numpy(x_np), torch.from_numpy(y_np)
    tracker = Tracker(attacked).eval()
    atk = torchattacks.PGD(tracker, eps=args.eps / (hi - lo), alpha=args.step_size / (hi - lo),
                           steps=args.steps, random_start=False)

    start = time.perf_counter()
    robust = robust_last = 0
    for i in range(0, len(x_all), args.batch_size):
        x, y = x_all[i:i + args.batch_size], y_all[i:i + args.batch_size]
        tracker.watch(y)
        adv = atk(x, y)
        with torch.no_grad():
            right = tracker(adv).argmax(1) == y
        robust_last += right.sum().item()
        robust += (~tracker.broken).sum().item()
    seconds = time.perf_counter() - start

    n = len(x_all)
    forward = forward_flops(model, spec["input"]["shape"])
    per_image = args.steps * 2.0 * forward + forward
    print(f"torchattacks {n / seconds:.1f} images/s robust {100 * robust / n:.2f}% "
          f"(last iterate {100 * robust_last / n:.2f}%; torch {torch.__version__}, "
          f"torchattacks {torchattacks.__version__}, {args.threads} threads, {seconds:.2f} s)")
    print(f"inputs {'x'.join(str(d) for d in x_np.shape)} sha256 {inputs_digest(x_np, y_np)}")
    print(f"work {forward / 1e6:.4f} MFLOP per forward, {per_image / 1e6:.4f} MFLOP per image")
    print(f"hot path {n * per_image / seconds / 1e9:.1f} GFLOP/s")
    print(f"torch SGEMM peak {sgemm_peak():.1f} GFLOP/s (1024^3, {args.threads} threads)")
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {rss_kib / 1024:.1f} MiB (ru_maxrss)")


if __name__ == "__main__":
    main()
