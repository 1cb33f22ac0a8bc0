#!/usr/bin/env python3
"""Trains the shipped residual MNIST CNN in PyTorch and exports it with its spec.

Rebuilds ``assets/mnist_resnet.safetensors`` from the real digits in
``../shared/data/mnist`` (8,000-digit train split; the 2,000-digit test split is
read only to report accuracy), from the repository root::

    python examples/train_resnet.py --out assets/mnist_resnet.safetensors

The network (115,770 parameters) exercises the ops the plain CNN does not:
batch norm, a residual block with a projection shortcut, an average pool and
GELU, with the input normalization (mean 0.1307, std 0.3081) inside the model::

    stem   conv 1→16 3×3 pad 1 (no bias), BN, ReLU                      28×28
    block  body:     conv 16→32 3×3 stride 2 pad 1, BN, ReLU,
                     conv 32→32 3×3 pad 1, BN                         → 14×14
           shortcut: conv 16→32 1×1 stride 2, BN;  ReLU after the sum
    pool   avg 2×2                                                    →  7×7
    head   flatten 1568 → linear 64 → GELU (erf) → dropout 0.2 → linear 10

Recipe (the defaults): seed 0 (``torch.manual_seed`` for the initialisation
and dropout, a separate seeded generator for the shuffle and the shifts), one
CPU thread with deterministic algorithms, 30 epochs of batch 64, AdamW (lr 2e-3,
weight decay 1e-4) with a per-step cosine decay to 0, cross-entropy, random
shifts of up to 2 pixels (zero filled). BN convolutions carry no bias.

Made with torch 2.15.0 (the +cu132 build, run on the CPU) on the 2-core
development machine, 1 thread, in 127 s of training: 98.90% on the 2,000-digit
test split, 98.80% (988) on the 1,000 sample digits, 467,920 bytes. A rerun with the same seed, thread count and
torch build writes a byte-identical file (checked: same SHA-256 twice).
"""

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_pytorch import Residual, export, load, read_idx, spec_from_module  # noqa: E402

MEAN, STD = 0.1307, 0.3081


def build_model(dropout):
    """The residual CNN; state_dict names become the spec's ``param`` prefixes."""
    def conv_bn(cin, cout, k, stride=1, padding=0):
        return [nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False),
                nn.BatchNorm2d(cout)]

    return nn.Sequential(collections.OrderedDict([
        ("stem", nn.Sequential(*conv_bn(1, 16, 3, padding=1), nn.ReLU())),
        ("block", Residual(
            nn.Sequential(*conv_bn(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                          *conv_bn(32, 32, 3, padding=1)),
            nn.Sequential(*conv_bn(16, 32, 1, stride=2)),
            activation=nn.ReLU())),
        ("pool", nn.AvgPool2d(2)),
        ("flatten", nn.Flatten()),
        ("head", nn.Sequential(nn.Linear(32 * 7 * 7, 64), nn.GELU(), nn.Dropout(dropout),
                               nn.Linear(64, 10))),
    ]))


def read_split(data_dir, stem):
    """Pixels in [0, 1] as [N, 1, 28, 28] float32 and labels as int64."""
    images = read_idx(data_dir / f"{stem}-images-idx3-ubyte.gz")
    labels = read_idx(data_dir / f"{stem}-labels-idx1-ubyte.gz")
    x = torch.from_numpy(images.astype(np.float32) / np.float32(255.0)).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def shift(x, max_shift, gen):
    """Each image moved by up to ``max_shift`` pixels in y and x, zero filled."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    d = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        dy, dx = int(d[i, 0]), int(d[i, 1])
        out[i] = padded[i, :, dy:dy + h, dx:dx + w]
    return out


def normalize(x):
    return (x - MEAN) / STD


@torch.no_grad()
def accuracy(model, x, y, normalized_inside=False):
    model.eval()
    correct = 0
    for start in range(0, len(x), 500):
        xb = x[start:start + 500]
        logits = model(xb if normalized_inside else normalize(xb))
        correct += int((logits.argmax(1) == y[start:start + 500]).sum())
    return correct / len(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data/mnist"))
    p.add_argument("--sample-dir", type=Path, default=Path("assets/mnist-sample"))
    p.add_argument("--out", type=Path, default=Path("assets/mnist_resnet.safetensors"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--max-shift", type=int, default=2)
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads; results are reproducible for a given count")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    x_train, y_train = read_split(args.data_dir, "train")
    x_test, y_test = read_split(args.data_dir, "test")
    print(f"torch {torch.__version__}, {args.threads} thread(s); "
          f"train {len(x_train)} digits, test {len(x_test)} digits", file=sys.stderr)

    model = build_model(args.dropout)
    n_params = sum(t.numel() for t in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps_per_epoch * args.epochs)

    started = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        loss_sum = 0.0
        for start in range(0, len(order), args.batch_size):
            idx = order[start:start + args.batch_size]
            xb = normalize(shift(x_train[idx], args.max_shift, gen))
            loss = F.cross_entropy(model(xb), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item()
        print(f"epoch {epoch + 1:2d}: loss {loss_sum / steps_per_epoch:.4f}, test accuracy "
              f"{100 * accuracy(model, x_test, y_test):.2f}% "
              f"({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    elapsed = time.perf_counter() - started

    model.eval()
    # Version 1, as the shipped file has it (its layer names are in plans and reports).
    spec = spec_from_module(model, (1, 28, 28), mean=[MEAN], std=[STD],
                            classes=[str(i) for i in range(10)], name="mnist-resnet", version=1)
    export(model, args.out, spec)

    # Accuracy of the file as written, normalization inside the rebuilt model.
    loaded = load(args.out)
    test_acc = accuracy(loaded, x_test, y_test, normalized_inside=True)
    sample = ""
    if args.sample_dir.is_dir():
        x_s, y_s = read_split(args.sample_dir, "sample")
        sample = (f", {100 * accuracy(loaded, x_s, y_s, normalized_inside=True):.2f}% "
                  f"on the {len(x_s)} sample digits")
    print(f"{args.out}: {n_params} parameters, {100 * test_acc:.2f}% on the {len(x_test)}-digit "
          f"test split{sample}; seed {args.seed}, {args.epochs} epochs, lr {args.lr}, "
          f"{args.threads} thread(s), torch {torch.__version__}, {elapsed:.0f}s training, "
          f"{args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
