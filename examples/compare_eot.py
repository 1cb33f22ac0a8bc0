"""Compare xai-audit's `autoattack` version "rand" with torchattacks on a randomized model.

AutoAttack's rand version is APGD-CE then APGD-DLR (100 steps, 1 restart),
each gradient averaged over 20 draws (`eot_iter = 20`), robustness judged by
one draw at the end. torchattacks' APGD has `eot_iter`; this script runs the
two as a MultiAttack on the torch model that export_pytorch builds from the
same spec and weights (its random layers draw from torch's generator, so the
draws differ from xai-audit's: compare robust accuracy across seeds, not per
input), and the same pair with one draw (`eot_iter = 1`) to show what EoT
adds. xai-audit runs the same plan with `--seed` for each seed.

One difference stays: torchattacks' APGD (as AutoAttack's) returns the
clean input where no step's draw misclassified it, while xai-audit returns
its highest-loss point, which the checking draw may misclassify; xai-audit's
robust accuracy is therefore lower or equal in expectation.

    python examples/compare_eot.py assets/mnist_cnn.safetensors --arch rrp.json \\
        --data assets/mnist-sample/sample-images-idx3-ubyte.gz --eps 0.1 --limit 200
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchattacks

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_pytorch  # noqa: E402

PLAN = """seed = 0
batch_size = 100
[[attack]]
name = "aa-rand"
kind = "autoattack"
version = "rand"
norm = "{norm}"
eps = {eps}
[[attack]]
name = "ce-1"
kind = "apgd"
norm = "{norm}"
eps = {eps}
[[attack]]
name = "dlr-1"
kind = "apgd"
loss = "dlr"
norm = "{norm}"
eps = {eps}
[[attack]]
name = "single-draw"
kind = "ensemble"
members = ["ce-1", "dlr-1"]
"""


def torch_side(model, x, y, norm, eps, seed, eot):
    """AutoAttack's protocol (run_standard_evaluation): clean accuracy from one
    draw, then each attack on the inputs still robust, its points checked by
    one fresh draw."""
    torch.manual_seed(seed)
    with torch.no_grad():
        robust = model(x).argmax(1) == y
    for loss in ("ce", "dlr"):
        idx = robust.nonzero().flatten()
        if len(idx) == 0:
            break
        attack = torchattacks.APGD(model, norm=norm, eps=eps, steps=100, n_restarts=1, seed=seed,
                                   loss=loss, eot_iter=eot)
        adv = attack(x[idx], y[idx])
        with torch.no_grad():
            broken = model(adv).argmax(1) != y[idx]
        robust[idx[broken]] = False
    return robust.float().mean().item()


def ours(binary, model, arch, data, norm, eps, limit, seed, workdir):
    plan = os.path.join(workdir, "plan.toml")
    with open(plan, "w") as f:
        f.write(PLAN.format(norm=norm.lower(), eps=eps))
    out = os.path.join(workdir, f"r{seed}.json")
    subprocess.run([binary, "run", model, "--arch", arch, "--data", data, "--plan", plan,
                    "--limit", str(limit), "--seed", str(seed), "--out", out],
                   check=True, capture_output=True)
    report = json.load(open(out))
    return {a["name"]: a["robust_accuracy"] for a in report["summary"]["attacks"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--arch", required=True, help="the randomized spec (random_resize_pad, active dropout)")
    ap.add_argument("--data", required=True, help="IDX images file (labels found beside it)")
    ap.add_argument("--norm", default="Linf", choices=["Linf", "L2"])
    ap.add_argument("--eps", type=float, required=True)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--binary", default="target/release/xai-audit")
    args = ap.parse_args()

    torch.set_num_threads(1)
    model = export_pytorch.load(args.model, arch=args.arch)
    images = export_pytorch.read_idx(args.data)[:args.limit].astype(np.float32) / 255.0
    labels = export_pytorch.read_idx(args.data.replace("images-idx3", "labels-idx1"))[:args.limit]
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))

    rows = {"torchattacks EoT 20": [], "torchattacks 1 draw": [],
            "xai-audit EoT 20": [], "xai-audit 1 draw": []}
    with tempfile.TemporaryDirectory() as workdir:
        for seed in args.seeds:
            rows["torchattacks EoT 20"].append(torch_side(model, x, y, args.norm, args.eps, seed, 20))
            rows["torchattacks 1 draw"].append(torch_side(model, x, y, args.norm, args.eps, seed, 1))
            r = ours(args.binary, args.model, args.arch, args.data, args.norm, args.eps,
                     args.limit, seed, workdir)
            rows["xai-audit EoT 20"].append(r["aa-rand"])
            rows["xai-audit 1 draw"].append(r["single-draw"])
            print(f"seed {seed}: " + ", ".join(f"{k} {100 * v[-1]:.1f}%" for k, v in rows.items()),
                  flush=True)
    print(f"\n{args.limit} inputs, {args.norm} eps {args.eps}, seeds {args.seeds}")
    for name, values in rows.items():
        pct = [100 * v for v in values]
        print(f"{name:<22} mean {statistics.mean(pct):6.2f}%  range {min(pct):.1f}–{max(pct):.1f}%")


if __name__ == "__main__":
    main()
