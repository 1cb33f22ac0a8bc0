"""Compare xai-audit's minimum-norm attacks (cw, deepfool) with Foolbox 3.

The torch model is rebuilt from the model file's spec and weights by
export_pytorch.load (normalization inside the model, as in xai-audit). Each
`cw` and `deepfool` entry of the report's plan is rerun with Foolbox's
L2CarliniWagnerAttack (same binary_search_steps, steps, stepsize =
learning_rate, confidence, initial_const, abort_early) or L2/LinfDeepFoolAttack
(same steps, candidates, overshoot, logits loss) on the same inputs, and the
script prints per attack the medians of the per-input minimum norms over the
inputs both classify correctly (an input not broken counts as infinitely far),
their ratio, and the per-input agreement (share of those inputs where both
found an adversarial within 1% / 5% of each other's norm, or neither found
one), with each side's run time.

    python examples/compare_minnorm.py assets/mnist_cnn.safetensors REPORT.json \
        --data assets/mnist-sample/sample-images-idx3-ubyte.gz

`--fixture FILE --fixture-count 32` also writes Foolbox's per-input norms of
the first inputs as JSON (the CI fixture tests/fixtures/minnorm/).

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
    return (d.abs().max(1).values if norm == "linf" else d.norm(dim=1)).numpy()


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
    header = (f"{'attack':<12} {'norm':<5} {'broken fb/ours':>15} {'median fb':>10} {'median ours':>12} "
              f"{'ratio':>7} {'agree 1%':>9} {'agree 5%':>9} {'fb s':>8} {'ours s':>8}")
    print(header)
    fixture = {}
    for k, spec in enumerate(report["plan"]["attacks"]):
        atk = foolbox_attack(spec)
        if atk is None or (args.only and spec["name"] not in args.only):
            continue
        norm = spec["norm"]
        theirs = np.full(n, np.inf)
        start = time.time()
        for i in range(0, n, args.batch_size):
            x, y = x_all[i:i + args.batch_size], y_all[i:i + args.batch_size]
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
              f"{100 * agree[0.05]:>8.1f}% {fb_seconds:>8.1f} {seconds.get(spec['name'], float('nan')):>8.1f}")
        m = min(args.fixture_count, n)
        fixture[spec["name"]] = {
            "spec": spec,
            "foolbox_norms": [None if not np.isfinite(v) else float(v) for v in theirs[:m]],
            "correct": [bool(c) for c in both[:m]],
        }
    if args.fixture:
        meta = {"model": os.path.basename(args.model), "inputs": min(args.fixture_count, n),
                "foolbox": fb.__version__, "torch": torch.__version__,
                "foolbox_batch_size": args.batch_size}
        with open(args.fixture, "w") as f:
            json.dump({"meta": meta, "attacks": fixture}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
