"""Compare xai-audit's minimum-norm attacks (cw, deepfool, fab) with Foolbox 3 and torchattacks.

The torch model is rebuilt from the model file's spec and weights by
export_pytorch.load (normalization inside the model, as in xai-audit). Each
`cw` and `deepfool` entry of the report's plan is rerun with Foolbox's
L2CarliniWagnerAttack (same binary_search_steps, steps, stepsize =
learning_rate, confidence, initial_const, abort_early) or L2/LinfDeepFoolAttack
(same steps, candidates, overshoot, logits loss), and each untargeted
one-restart `fab` entry (L∞, L2 or L1) with torchattacks' FAB at the same
steps, alpha_max, eta and beta (its single run's smallest misclassified
iterate: the minimum-norm result before `perturb`'s filter by ε), on the same
inputs, and the
script prints per attack the medians of the per-input minimum norms over the
inputs both classify correctly (an input not broken counts as infinitely far),
their ratio, and the per-input agreement (share of those inputs where both
found an adversarial within 1% / 5% of each other's norm, or neither found
one), with each side's run time.

    python examples/compare_minnorm.py assets/mnist_cnn.safetensors REPORT.json \
        --data assets/mnist-sample/sample-images-idx3-ubyte.gz

`--fixture FILE --fixture-count 32` also writes the reference's per-input
norms of the first inputs as JSON (`foolbox_norms`, or `torchattacks_norms`
for FAB), with both sides' medians over all compared inputs (the CI fixtures
tests/fixtures/minnorm/ and tests/fixtures/reference/).

Foolbox's CW returns an all-zero image for an input where it found nothing;
the criterion often calls that adversarial (a blank image is rarely the
label), so this script counts an all-zero result as not found.

Foolbox's CW aborts early on the loss summed over the batch while xai-audit
checks each input's own loss, so CW results depend on Foolbox's batch size
(`--batch-size`, default 100) and not on xai-audit's.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import foolbox as fb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_pytorch  # noqa: E402


def foolbox_attack(spec):
    if spec["kind"] == "cw":
        return fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=spec["binary_search_steps"], steps=spec["steps"],
            stepsize=spec["learning_rate"], confidence=spec["confidence"],
            initial_const=spec["initial_const"], abort_early=spec["abort_early"])
    if spec["kind"] == "deepfool":
        cls = {"l2": fb.attacks.L2DeepFoolAttack, "linf": fb.attacks.LinfDeepFoolAttack}[spec["norm"]]
        return cls(steps=spec["steps"], candidates=spec["candidates"], overshoot=spec["overshoot"],
                   loss="logits")
    return None


def norms(a, b, norm):
    d = (a - b).reshape(len(a), -1).double()
    if norm == "l1":
        return d.abs().sum(1).numpy()
    return (d.abs().max(1).values if norm == "linf" else d.norm(dim=1)).numpy()


def torchattacks_fab(model, spec, n_classes):
    """torchattacks' FAB at an untargeted one-restart `fab` entry's settings
    (steps, alpha_max, eta, beta: the entry's, so the reference's 100 steps
    rather than torchattacks' default 10), or None."""
    if spec["kind"] != "fab" or spec.get("target_classes") is not None or spec.get("restarts", 1) != 1:
        return None
    import torchattacks
    norm = {"linf": "Linf", "l2": "L2", "l1": "L1"}[spec["norm"]]
    return torchattacks.FAB(model, norm=norm, eps=spec.get("eps"), steps=spec["steps"], n_restarts=1,
                            alpha_max=spec["alpha_max"], eta=spec["eta"], beta=spec["beta"], seed=0,
                            n_classes=n_classes)


def fab_min_norm(atk, x, y, norm):
    """The smallest adversarial of torchattacks' FAB per input (inf: none).
    Its single run, which keeps the smallest misclassified iterate: `perturb`
    would only add a filter by ε (and has no L1 branch in torchattacks 3.5.1)."""
    with torch.no_grad():
        adv = atk.attack_single_run(x, y, use_rand_start=False)
        fooled = (atk.get_logits(adv).argmax(1) != y).numpy()
    return np.where(fooled, norms(adv, x, norm), np.inf)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("report")
    ap.add_argument("--data", required=True, help="IDX images file (labels found beside it)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--fixture", help="write Foolbox's per-input norms of the first inputs here")
    ap.add_argument("--fixture-count", type=int, default=32)
    ap.add_argument("--only", nargs="*", help="compare only these attack names")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = export_pytorch.load(args.model).eval()
    report = json.load(open(args.report))
    n = report["summary"]["count"]
    lo, hi = report["model"].get("input_range", [0.0, 1.0]) if isinstance(report.get("model"), dict) else (0.0, 1.0)
    images = export_pytorch.read_idx(args.data)[:n].astype(np.float32) / 255.0
    images = lo + images * (hi - lo)
    labels_path = args.data.replace("images-idx3", "labels-idx1")
    labels = export_pytorch.read_idx(labels_path)[:n].astype(np.int64)
    x_all = torch.from_numpy(images).unsqueeze(1)
    y_all = torch.from_numpy(labels)
    fmodel = fb.PyTorchModel(model, bounds=(lo, hi))

    with torch.no_grad():
        clean = torch.cat([model(x_all[i:i + 500]).argmax(1) for i in range(0, n, 500)]).numpy()
    ours_clean = np.array([s["prediction"] for s in report["samples"]])
    both = (clean == labels) & (ours_clean == labels)
    print(f"{n} inputs; clean accuracy torch {100 * (clean == labels).mean():.2f}%, "
          f"xai-audit {100 * report['summary']['clean_accuracy']:.2f}%; "
          f"{both.sum()} correct on both sides")
    seconds = {t["name"]: t["seconds"] for t in report["timings"]["attacks"]}
    header = (f"{'attack':<12} {'norm':<5} {'broken ref/ours':>15} {'median ref':>10} {'median ours':>12} "
              f"{'ratio':>7} {'agree 1%':>9} {'agree 5%':>9} {'ref s':>8} {'ours s':>8}")
    print(header)
    fixture = {}
    with torch.no_grad():
        n_classes = model(x_all[:1]).shape[1]
    for k, spec in enumerate(report["plan"]["attacks"]):
        atk = foolbox_attack(spec)
        ta = torchattacks_fab(model, spec, n_classes) if atk is None else None
        if (atk is None and ta is None) or (args.only and spec["name"] not in args.only):
            continue
        norm = spec["norm"]
        theirs = np.full(n, np.inf)
        start = time.time()
        for i in range(0, n, args.batch_size):
            x, y = x_all[i:i + args.batch_size], y_all[i:i + args.batch_size]
            if ta is not None:
                theirs[i:i + len(x)] = fab_min_norm(ta, x, y, norm)
                continue
            raw, _, success = atk(fmodel, x, fb.criteria.Misclassification(y), epsilons=None)
            d = norms(raw, x, norm)
            # Foolbox's CW returns an all-zero image where it found nothing,
            # which the criterion then often calls adversarial (a blank image
            # is rarely the label): no tanh-space point is exactly 0, so an
            # all-zero result is "not found".
            blank = (raw.reshape(len(raw), -1) == 0).all(dim=1).numpy()
            theirs[i:i + len(x)] = np.where(success.numpy() & ~blank, d, np.inf)
        fb_seconds = time.time() - start
        ours = np.array([s["attacks"][k]["perturbation_" + norm] if s["attacks"][k]["success"] else np.inf
                         for s in report["samples"]])
        t, o = theirs[both], ours[both]
        med_t, med_o = np.median(t), np.median(o)
        found_t, found_o = np.isfinite(t), np.isfinite(o)
        agree = {}
        for tol in (0.01, 0.05):
            close = found_t & found_o & (np.abs(o - t) <= tol * np.minimum(o, t))
            agree[tol] = float((close | (~found_t & ~found_o)).mean())
        print(f"{spec['name']:<12} {norm:<5} {f'{found_t.sum()}/{found_o.sum()} of {both.sum()}':>15} "
              f"{med_t:>10.4f} {med_o:>12.4f} {med_o / med_t:>7.4f} {100 * agree[0.01]:>8.1f}% "
              f"{100 * agree[0.05]:>8.1f}% {fb_seconds:>8.1f} {seconds.get(spec['name'], float('nan')):>8.1f}", flush=True)
        m = min(args.fixture_count, n)
        fixture[spec["name"]] = {
            "spec": spec,
            ("torchattacks_norms" if ta is not None else "foolbox_norms"):
                [None if not np.isfinite(v) else float(v) for v in theirs[:m]],
            "correct": [bool(c) for c in both[:m]],
            "reference_median": float(np.median(t)),
            "xai_audit_median": float(np.median(o)),
        }
    if args.fixture:
        meta = {"model": os.path.basename(args.model), "inputs": min(args.fixture_count, n),
                "torch": torch.__version__}
        if any("foolbox_norms" in v for v in fixture.values()):
            meta.update({"foolbox": fb.__version__, "foolbox_batch_size": args.batch_size})
        if any("torchattacks_norms" in v for v in fixture.values()):
            import torchattacks
            meta.update({"torchattacks": torchattacks.__version__, "torchattacks_batch_size": args.batch_size})
        with open(args.fixture, "w") as f:
            json.dump({"meta": meta, "attacks": fixture}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
