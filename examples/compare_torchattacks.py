"""Compare an xai-audit report with torchattacks on the same weights and inputs.

The torch model is rebuilt from the model file's spec and weights by
export_pytorch.load (normalization inside the model, as in xai-audit). Each
attack of the report's plan is rerun with torchattacks (FGSM for L-inf FGSM,
PGD / PGDL2 for PGD without random start, APGD, APGD-T (APGDT with the
entry's number of target classes), Square, FAB / FAB-T with the reference's
100 steps (torchattacks' default is 10), and `autoattack` as the standard
version's members in a MultiAttack, FAB-T at 100 steps rather than
torchattacks' AutoAttack's 10), and the script prints, per attack, both
robust accuracies, their difference, the share of inputs whose adversarial
prediction agrees and torchattacks' run time.

    python examples/compare_torchattacks.py assets/mnist_cnn.safetensors REPORT.json \
        --data assets/mnist-sample/sample-images-idx3-ubyte.gz [--seeds 0 1 2] [--only NAME ...]

Random attacks (APGD's random start, APGD-T, Square, FAB with restarts,
AutoAttack) run once per `--seeds` value on torchattacks' side, with a
mean row and the spread; their agreement column is indicative only (the two
sides draw from different generators). `--limit N` compares the report's
first N inputs only; `--json FILE` writes the figures and torchattacks'
predictions (tests/fixtures/reference/ is made with it).

torchattacks 3.5.1's FAB has no L1 branch in `perturb` (an UnboundLocalError),
so an L1 `fab` entry runs torchattacks' single run as `perturb` would with
one restart (FabL1 below); examples/compare_minnorm.py compares the L1
distances themselves.

torchattacks returns the last iterate while xai-audit keeps the best point per
input, so xai-audit's robust accuracy can only be lower or equal on a sample
where the last iterate is not the best.
"""

import argparse
import json
import os
import sys
import time

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
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="torchattacks' seeds: each random attack (APGD, APGD-T, Square, FAB with "
                         "restarts, AutoAttack) runs once per seed (default: 0)")
    ap.add_argument("--only", nargs="*", help="compare only these attack names")
    ap.add_argument("--limit", type=int, help="compare only the report's first N inputs")
    ap.add_argument("--json", help="write the figures (and torchattacks' predictions) here")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = export_pytorch.load(args.model)
    report = json.load(open(args.report))
    n = report["summary"]["count"] if args.limit is None else min(args.limit, report["summary"]["count"])
    images = export_pytorch.read_idx(args.data)[:n].astype(np.float32) / 255.0
    labels_path = args.data.replace("images-idx3", "labels-idx1")
    labels = export_pytorch.read_idx(labels_path)[:n].astype(np.int64)
    x_all = torch.from_numpy(images).unsqueeze(1)
    y_all = torch.from_numpy(labels)

    with torch.no_grad():
        n_classes = model(x_all[:1]).shape[1]
        clean = torch.cat([model(x_all[i:i + 500]).argmax(1) for i in range(0, n, 500)])
    ours_clean = np.array([s["prediction"] for s in report["samples"][:n]])
    print(f"{n} inputs; clean accuracy torch {100 * (clean == y_all).float().mean():.2f}%, "
          f"xai-audit {100 * (ours_clean == labels).mean():.2f}%")
    print(f"{'attack':<18} {'seed':>4} {'torchattacks':>12} {'xai-audit':>10} {'diff (pp)':>10} "
          f"{'agreement':>10} {'seconds':>8}")
    results = []
    for k, spec in enumerate(report["plan"]["attacks"]):
        if args.only and spec["name"] not in args.only:
            continue
        if spec.get("target") is not None or (spec["kind"] == "pgd" and spec.get("random_start")):
            print(f"{spec['name']:<18} skipped (targeted or random start: not comparable point by point)")
            continue
        if build(model, spec, n_classes, 0) is None:
            print(f"{spec['name']:<18} skipped (no torchattacks counterpart)")
            continue
        ours_preds = np.array([s["attacks"][k]["prediction"] for s in report["samples"][:n]])
        ours = float((ours_preds == labels).mean())
        random_points = is_random(spec)
        rows = []
        for seed in (args.seeds if random_points else [0]):
            atk = build(model, spec, n_classes, seed)
            started = time.time()
            preds = []
            for i in range(0, n, args.batch_size):
                adv = atk(x_all[i:i + args.batch_size], y_all[i:i + args.batch_size])
                with torch.no_grad():
                    preds.append(model(adv).argmax(1))
            seconds = time.time() - started
            preds = torch.cat(preds).numpy()
            theirs = float((preds == labels).mean())
            agree = float((ours_preds == preds).mean())
            # Robust on both sides or broken on both sides (whatever the class).
            same_robust = float(((ours_preds == labels) == (preds == labels)).mean())
            note = "  (random: not point by point)" if random_points else ""
            print(f"{spec['name']:<18} {seed:>4} {100 * theirs:>11.2f}% {100 * ours:>9.2f}% "
                  f"{100 * (ours - theirs):>+10.2f} {100 * agree:>9.2f}% {seconds:>8.1f}{note}", flush=True)
            rows.append({"seed": seed, "robust_accuracy": theirs, "agreement": agree,
                         "same_robustness": same_robust, "seconds": seconds,
                         "predictions": preds.tolist()})
        if len(rows) > 1:
            accs = [r["robust_accuracy"] for r in rows]
            print(f"{spec['name']:<18} {'all':>4} {100 * np.mean(accs):>11.2f}% {100 * ours:>9.2f}% "
                  f"{100 * (ours - np.mean(accs)):>+10.2f} "
                  f"{100 * np.mean([r['agreement'] for r in rows]):>9.2f}%  "
                  f"(mean over seeds; torchattacks {100 * min(accs):.2f}–{100 * max(accs):.2f}%)")
        results.append({"name": spec["name"], "spec": spec, "xai_audit_robust_accuracy": ours,
                        "xai_audit_seconds": next((t["seconds"] for t in report["timings"]["attacks"]
                                                   if t["name"] == spec["name"]), None),
                        "torchattacks": rows})
        if args.json:
            # Rewritten after each attack, so that a long run interrupted
            # keeps what it finished.
            meta = {"model": os.path.basename(args.model), "inputs": n, "seeds": args.seeds,
                    "torchattacks": torchattacks.__version__, "torch": torch.__version__,
                    "batch_size": args.batch_size, "labels": labels.tolist(),
                    "correct": (clean.numpy() == labels).tolist()}
            with open(args.json, "w") as f:
                json.dump({"meta": meta, "attacks": results}, f)
                f.write("\n")


def is_random(spec):
    """Whether torchattacks draws random points for this entry (then compare
    robust accuracies over seeds; the agreement column is indicative only)."""
    return (spec["kind"] in ("apgd", "square", "autoattack")
            or (spec["kind"] == "fab" and spec.get("restarts", 1) > 1))


def build(model, spec, n_classes, seed):
    """torchattacks' counterpart of a plan entry (None: none)."""
    norm = {"linf": "Linf", "l2": "L2", "l1": "L1"}[spec["norm"]]
    if spec["kind"] == "apgd" and spec["norm"] != "l1":
        if spec.get("target_classes") is None:
            return torchattacks.APGD(model, norm=norm, eps=spec["eps"], steps=spec["steps"],
                                     n_restarts=spec.get("restarts", 1), loss=spec.get("loss", "ce"),
                                     seed=seed)
        atk = torchattacks.APGDT(model, norm=norm, eps=spec["eps"], steps=spec["steps"],
                                 n_restarts=spec.get("restarts", 1), n_classes=n_classes, seed=seed)
        atk.n_target_classes = min(spec["target_classes"], n_classes - 1)
        return atk
    if spec["kind"] == "square" and spec["norm"] != "l1":
        return torchattacks.Square(model, norm=norm, eps=spec["eps"], n_queries=spec["queries"],
                                   n_restarts=spec.get("restarts", 1), p_init=spec.get("p_init", 0.8),
                                   loss="margin", resc_schedule=spec.get("rescale_schedule", True), seed=seed)
    if spec["kind"] == "fab":
        # Deterministic with one restart: comparable point by point.
        return fab(model, spec, norm, n_classes, seed)
    if spec["kind"] == "autoattack" and spec.get("version", "standard") == "standard":
        members = {m["name"].split("/")[-1]: m for m in spec["members"]}
        return torchattacks.MultiAttack([
            torchattacks.APGD(model, norm=norm, eps=spec["eps"], steps=100, n_restarts=1, loss="ce", seed=seed),
            torchattacks.APGDT(model, norm=norm, eps=spec["eps"], steps=100, n_restarts=1,
                               n_classes=n_classes, seed=seed),
            fab(model, members["fab-t"], norm, n_classes, seed),
            # The original AutoAttack's Square: unscaled p schedule (torchattacks'
            # AutoAttack rescales it); the member's spec says which ours ran.
            torchattacks.Square(model, norm=norm, eps=spec["eps"], n_queries=5000, n_restarts=1,
                                p_init=0.8, loss="margin",
                                resc_schedule=members["square"].get("rescale_schedule", True),
                                seed=seed),
        ])
    if spec["kind"] == "fgsm" and spec["norm"] == "linf":
        return torchattacks.FGSM(model, eps=spec["eps"])
    if spec["kind"] == "pgd" and spec["norm"] == "linf":
        return torchattacks.PGD(model, eps=spec["eps"], alpha=spec["step_size"], steps=spec["steps"],
                                random_start=False)
    if spec["kind"] == "pgd" and spec["norm"] == "l2":
        return torchattacks.PGDL2(model, eps=spec["eps"], alpha=spec["step_size"], steps=spec["steps"],
                                  random_start=False)
    return None


def fab(model, spec, norm, n_classes, seed=0):
    """torchattacks' FAB at an xai-audit entry's settings."""
    cls = FabL1 if norm == "L1" else torchattacks.FAB
    atk = cls(model, norm=norm, eps=spec.get("eps"), steps=spec["steps"],
              n_restarts=spec["restarts"], alpha_max=spec["alpha_max"], eta=spec["eta"],
              beta=spec["beta"], seed=seed, multi_targeted=spec.get("target_classes") is not None,
              n_classes=n_classes)
    if spec.get("target_classes") is not None:
        atk.n_target_classes = min(spec["target_classes"], n_classes - 1)
    return atk


class FabL1(torchattacks.FAB):
    """torchattacks 3.5.1's FAB with L1 budgets: its `perturb` measures the
    found point's distance in L∞ and L2 only (`res` is unset in L1, an
    UnboundLocalError), where the reference (fra31/auto-attack's fab_base)
    also measures L1. One untargeted restart, as `perturb` runs it: the
    single run's point, kept where it misclassifies within ε. The single
    runs are torchattacks' own, L1 projection included."""

    def perturb(self, x, y):
        if self.n_restarts != 1 or self.multi_targeted or self.targeted:
            raise NotImplementedError("FabL1: one untargeted restart only")
        adv = x.clone()
        with torch.no_grad():
            acc = self.get_logits(x).max(1)[1] == y
            torch.random.manual_seed(self.seed)
            ind = acc.nonzero().flatten()
            if ind.numel() == 0:
                return adv
            x_to_fool, y_to_fool = x[ind].clone(), y[ind].clone()
            adv_curr = self.attack_single_run(x_to_fool, y_to_fool, use_rand_start=False)
            fooled = self.get_logits(adv_curr).max(1)[1] != y_to_fool
            res = (x_to_fool - adv_curr).abs().reshape(len(ind), -1).sum(-1)
            keep = fooled & (res <= self.eps)
            adv[ind[keep]] = adv_curr[keep].clone()
        return adv


if __name__ == "__main__":
    main()
