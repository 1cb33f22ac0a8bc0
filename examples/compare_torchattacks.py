"""Compare an xai-audit report with torchattacks on the same weights and inputs.

The torch model is rebuilt from the model file's spec and weights by
export_pytorch.load (normalization inside the model, as in xai-audit). Each
attack of the report's plan is rerun with torchattacks (FGSM for L-inf FGSM,
PGD / PGDL2 for PGD without random start, APGD, APGD-T, Square, FAB / FAB-T
with the reference's 100 steps (torchattacks' default is 10), and `autoattack`
as the standard version's members in a MultiAttack, FAB-T at 100 steps
rather than torchattacks' AutoAttack's 10), and the script prints, per attack,
both robust accuracies, their difference, and the share of inputs whose
adversarial prediction agrees.

    python examples/compare_torchattacks.py assets/mnist_cnn.safetensors REPORT.json \
        --data assets/mnist-sample/sample-images-idx3-ubyte.gz

torchattacks returns the last iterate while xai-audit keeps the best point per
input, so xai-audit's robust accuracy can only be lower or equal on a sample
where the last iterate is not the best.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torchattacks

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_pytorch  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("report")
    ap.add_argument("--data", required=True, help="IDX images file (labels found beside it)")
    ap.add_argument("--batch-size", type=int, default=100)
    args = ap.parse_args()

    torch.manual_seed(0)
    model = export_pytorch.load(args.model)
    report = json.load(open(args.report))
    n = report["summary"]["count"]
    images = export_pytorch.read_idx(args.data)[:n].astype(np.float32) / 255.0
    labels_path = args.data.replace("images-idx3", "labels-idx1")
    labels = export_pytorch.read_idx(labels_path)[:n].astype(np.int64)
    x_all = torch.from_numpy(images).unsqueeze(1)
    y_all = torch.from_numpy(labels)

    with torch.no_grad():
        n_classes = model(x_all[:1]).shape[1]
        clean = torch.cat([model(x_all[i:i + 500]).argmax(1) for i in range(0, n, 500)])
    print(f"{n} inputs; clean accuracy torch {100 * (clean == y_all).float().mean():.2f}%, "
          f"xai-audit {100 * report['summary']['clean_accuracy']:.2f}%")
    print(f"{'attack':<18} {'torchattacks':>12} {'xai-audit':>10} {'diff (pp)':>10} {'agreement':>10}")
    for k, spec in enumerate(report["plan"]["attacks"]):
        norm = {"linf": "Linf", "l2": "L2"}[spec["norm"]]
        random_points = False
        if spec.get("target") is not None or (spec["kind"] == "pgd" and spec.get("random_start")):
            print(f"{spec['name']:<18} skipped (targeted or random start: not comparable point by point)")
            continue
        if spec["kind"] == "apgd" and spec.get("target_classes") is None:
            # Random starts on both sides (different generators): compare the
            # robust accuracies; the agreement column is indicative only.
            atk = torchattacks.APGD(model, norm=norm, eps=spec["eps"], steps=spec["steps"],
                                    n_restarts=spec.get("restarts", 1), loss=spec.get("loss", "ce"), seed=0)
            random_points = True
        elif spec["kind"] == "square":
            atk = torchattacks.Square(model, norm=norm, eps=spec["eps"], n_queries=spec["queries"],
                                      n_restarts=spec.get("restarts", 1), p_init=spec.get("p_init", 0.8),
                                      loss="margin", resc_schedule=True, seed=0)
            random_points = True
        elif spec["kind"] == "fab":
            # Deterministic with one restart: comparable point by point.
            atk = fab(model, spec, norm, n_classes)
            random_points = spec.get("restarts", 1) > 1
        elif spec["kind"] == "autoattack" and spec.get("version", "standard") == "standard":
            members = {m["name"].split("/")[-1]: m for m in spec["members"]}
            atk = torchattacks.MultiAttack([
                torchattacks.APGD(model, norm=norm, eps=spec["eps"], steps=100, n_restarts=1, loss="ce", seed=0),
                torchattacks.APGDT(model, norm=norm, eps=spec["eps"], steps=100, n_restarts=1,
                                   n_classes=n_classes, seed=0),
                fab(model, members["fab-t"], norm, n_classes),
                torchattacks.Square(model, norm=norm, eps=spec["eps"], n_queries=5000, n_restarts=1,
                                    p_init=0.8, loss="margin", resc_schedule=True, seed=0),
            ])
            random_points = True
        elif spec["kind"] == "fgsm" and spec["norm"] == "linf":
            atk = torchattacks.FGSM(model, eps=spec["eps"])
        elif spec["kind"] == "pgd" and spec["norm"] == "linf":
            atk = torchattacks.PGD(model, eps=spec["eps"], alpha=spec["step_size"], steps=spec["steps"], random_start=False)
        elif spec["kind"] == "pgd" and spec["norm"] == "l2":
            atk = torchattacks.PGDL2(model, eps=spec["eps"], alpha=spec["step_size"], steps=spec["steps"], random_start=False)
        else:
            print(f"{spec['name']:<18} skipped (no torchattacks counterpart)")
            continue
        preds = []
        for i in range(0, n, args.batch_size):
            adv = atk(x_all[i:i + args.batch_size], y_all[i:i + args.batch_size])
            with torch.no_grad():
                preds.append(model(adv).argmax(1))
        preds = torch.cat(preds).numpy()
        theirs = float((preds == labels).mean())
        ours_preds = np.array([s["attacks"][k]["prediction"] for s in report["samples"]])
        ours = report["summary"]["attacks"][k]["robust_accuracy"]
        agree = float((ours_preds == preds).mean())
        note = "  (random: not point by point)" if random_points else ""
        print(f"{spec['name']:<18} {100 * theirs:>11.2f}% {100 * ours:>9.2f}% {100 * (ours - theirs):>+10.2f} {100 * agree:>9.2f}%{note}")


def fab(model, spec, norm, n_classes):
    """torchattacks' FAB at an xai-audit entry's settings."""
    atk = torchattacks.FAB(model, norm=norm, eps=spec.get("eps"), steps=spec["steps"],
                           n_restarts=spec["restarts"], alpha_max=spec["alpha_max"], eta=spec["eta"],
                           beta=spec["beta"], seed=0, multi_targeted=spec.get("target_classes") is not None,
                           n_classes=n_classes)
    if spec.get("target_classes") is not None:
        atk.n_target_classes = min(spec["target_classes"], n_classes - 1)
    return atk


if __name__ == "__main__":
    main()
