"""PGD-40 L-inf throughput of torchattacks on PyTorch, on the model and digits
`xai-audit bench` uses: the torch model is rebuilt from the safetensors file's
own spec and weights (examples/export_pytorch.load), nothing is exported anew.

    python benches/pgd_torchattacks.py assets/mnist_cnn.safetensors --threads 2

Prints one line: `torchattacks <images/s> images/s robust <pct>%`. Run by
benches/pgd_vs_torchattacks.sh, which alternates it with `xai-audit bench`.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
import torchattacks

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
import export_pytorch  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", default=os.path.join(HERE, "..", "assets", "mnist-sample",
                                                   "sample-images-idx3-ubyte.gz"))
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model = export_pytorch.load(args.model).eval()
    images = export_pytorch.read_idx(args.data)[: args.limit].astype(np.float32) / 255.0
    labels = export_pytorch.read_idx(args.data.replace("images-idx3", "labels-idx1"))
    x_all = torch.from_numpy(images).unsqueeze(1)
    y_all = torch.from_numpy(labels[: args.limit].astype(np.int64))
    atk = torchattacks.PGD(model, eps=0.1, alpha=0.01, steps=args.steps, random_start=False)

    start = time.perf_counter()
    robust = 0
    for i in range(0, len(x_all), args.batch_size):
        x, y = x_all[i:i + args.batch_size], y_all[i:i + args.batch_size]
        adv = atk(x, y)
        with torch.no_grad():
            robust += (model(adv).argmax(1) == y).sum().item()
    seconds = time.perf_counter() - start
    n = len(x_all)
    print(f"torchattacks {n / seconds:.1f} images/s robust {100 * robust / n:.2f}% "
          f"(torch {torch.__version__}, torchattacks {torchattacks.__version__}, "
          f"{args.threads} threads, {seconds:.2f} s)")


if __name__ == "__main__":
    main()
