"""Compare an xai-audit stress/equivariance report with PyTorch on the same weights.

The torch model is rebuilt from the model file's spec and weights by
export_pytorch.load. Run the audit with the parity plan first (it keeps every
generated input in the sidecar), then this script:

    xai-audit run assets/mnist_cnn.safetensors --plan attacks/stress-parity.toml --out /tmp/cnn.json
    python examples/compare_stress.py assets/mnist_cnn.safetensors /tmp/cnn.json \
        --data assets/mnist-sample/sample-images-idx3-ubyte.gz

It recomputes in PyTorch, independently of xai-audit's code:
- max-softmax on every noise input and on alpha-scaled (and clipped) uniform
  and data inputs, against the values in the sidecar;
- AUROC and FPR at 95% TPR per noise family, and ECE (15 bins), against the summary;
- predictions under circular shifts (torch.roll), zero-filled shifts,
  rotations (torchvision's rotate, bilinear) and flips, against every
  per-input record, and the consistency per transformation;
- the transformed example images in the sidecar against torchvision's
  rotate/affine (bilinear, zero fill) and torch.roll;
- exact Lie derivatives against torch.func.jvp along the generators
  (central differences of the image, built here with torch ops).
"""

import argparse
import json
import math
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from safetensors.numpy import load_file
from torchvision.transforms import InterpolationMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_pytorch  # noqa: E402


def logits_of(model, x, batch=500):
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def max_softmax(z):
    return torch.softmax(z.double(), 1).max(1).values


def log_odds(z):
    """-log sum_{j != argmax} exp(z_j - z_max): monotone in max-softmax, unsaturated."""
    z = z.double()
    top = z.max(1, keepdim=True)
    rest = torch.exp(z - top.values)
    rest.scatter_(1, top.indices, 0.0)
    return -torch.log(rest.sum(1))


def auroc(inside, outside):
    from scipy.stats import rankdata
    allv = np.concatenate([inside, outside])
    ranks = rankdata(allv)  # average ranks for ties
    n, m = len(inside), len(outside)
    return (ranks[:n].sum() - n * (n + 1) / 2) / (n * m)


def fpr_at_95(inside, outside):
    s = np.sort(inside)
    t = s[min(int(math.floor(0.05 * len(s))), len(s) - 1)]
    return float((outside >= t).mean())


def ece(conf, correct, bins=15):
    b = np.clip(np.ceil(conf * bins).astype(int), 1, bins) - 1
    total = 0.0
    for k in range(bins):
        mask = b == k
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return total


def parse_shift(label):
    dx = dy = 0
    for axis, v in re.findall(r"(dx|dy)=([+-]\d+)", label):
        if axis == "dx":
            dx = int(v)
        else:
            dy = int(v)
    return dx, dy


def shift_zero(x, dx, dy):
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def transformed(entry_kind, mode, label, x):
    if entry_kind == "shift":
        dx, dy = parse_shift(label)
        if mode == "circular":
            return torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        return shift_zero(x, dx, dy)
    if entry_kind == "rotation":
        angle = float(label.split("=")[1])
        return TF.rotate(x, angle, interpolation=InterpolationMode.BILINEAR)
    if entry_kind == "flip":
        return torch.flip(x, dims=(3,) if label.endswith("horizontal") else (2,))
    raise ValueError(entry_kind)


def rigid(x, label):
    vals = dict(re.findall(r"(angle|dx|dy)=([+-][0-9.]+)", label))
    a, dx, dy = float(vals["angle"]), float(vals["dx"]), float(vals["dy"])
    # torchvision's affine angle is clockwise; ours is counter-clockwise.
    return TF.affine(x, angle=-a, translate=[dx, dy], scale=1.0, shear=[0.0, 0.0],
                     interpolation=InterpolationMode.BILINEAR)


def generator(x, transform, border):
    """d T_t x / dt at t = 0: central differences (zero outside, or wrapped)."""
    if border == "circular":
        gx = (torch.roll(x, -1, 3) - torch.roll(x, 1, 3)) / 2
        gy = (torch.roll(x, -1, 2) - torch.roll(x, 1, 2)) / 2
    else:
        p = F.pad(x, (1, 1, 1, 1))
        gx = (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) / 2
        gy = (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) / 2
    if transform == "translate_x":
        return -gx
    if transform == "translate_y":
        return -gy
    h, w = x.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    u, v = xx - (w - 1) / 2, yy - (h - 1) / 2
    return -v * gx + u * gy


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("report")
    ap.add_argument("--data", required=True, help="IDX images file (labels found beside it)")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = export_pytorch.load(args.model)
    report = json.load(open(args.report))
    sidecar = load_file(os.path.join(os.path.dirname(os.path.abspath(args.report)), report["tensors"]))
    n = report["summary"]["count"]
    images = export_pytorch.read_idx(args.data)[:n].astype(np.float32) / 255.0
    labels = export_pytorch.read_idx(args.data.replace("images-idx3", "labels-idx1"))[:n].astype(np.int64)
    x = torch.from_numpy(images).unsqueeze(1)
    z = logits_of(model, x)
    pred = z.argmax(1).numpy()
    ours_pred = np.array([s["prediction"] for s in report["samples"]])
    print(f"{n} inputs; clean predictions agree on {100 * (pred == ours_pred).mean():.2f}%")
    inside = log_odds(z).numpy()
    stress = report["summary"].get("stress", {})
    plan = {e["name"]: e for e in report["plan"].get("stress", []) + report["plan"].get("equivariance", [])}

    print("\nmax-softmax on noise (torch vs xai-audit, same inputs)")
    print(f"{'family':<10} {'max |dp|':>10} {'AUROC t/x':>17} {'FPR@95 t/x':>17} {'MMC t/x':>15}")
    for entry in stress.get("noise", []):
        for fam in entry["families"]:
            key = f"stress/{entry['name']}/{fam['family']}"
            if key + "/inputs" not in sidecar:
                print(f"{fam['family']:<10} skipped: run with save_inputs = true")
                continue
            xin = torch.from_numpy(sidecar[key + "/inputs"])
            zf = logits_of(model, xin)
            p = max_softmax(zf).numpy()
            diff = np.abs(p - sidecar[key + "/confidence"]).max()
            out = log_odds(zf).numpy()
            a, f = auroc(inside, out), fpr_at_95(inside, out)
            print(f"{fam['family']:<10} {diff:>10.2e} {a:>8.5f}/{fam['auroc']:<8.5f} "
                  f"{f:>8.4f}/{fam['fpr_at_95_tpr']:<8.4f} {p.mean():>7.4f}/{fam['mmc']:<7.4f}")

    print("\nmax-softmax on alpha-scaled inputs (max |dp| over inputs and alphas)")
    for entry in stress.get("alpha_scaling", []):
        alphas = plan[entry["name"]]["alphas"]
        for s in entry["sets"]:
            which = s["inputs"]
            if which == "data":
                base = x
            else:
                key = f"stress/{entry['name']}/uniform/inputs"
                if key not in sidecar:
                    print(f"{which}: skipped (save_inputs = false)")
                    continue
                base = torch.from_numpy(sidecar[key])
            worst_s = worst_c = 0.0
            for k, a in enumerate(alphas):
                scaled = (base.double() * a).float()
                ps = max_softmax(logits_of(model, scaled)).numpy()
                pc = max_softmax(logits_of(model, scaled.clamp(0, 1))).numpy()
                ours_s = sidecar[f"stress/{entry['name']}/{which}/confidence_scaled"][:, k]
                ours_c = sidecar[f"stress/{entry['name']}/{which}/confidence_clipped"][:, k]
                worst_s = max(worst_s, np.abs(ps - ours_s).max())
                worst_c = max(worst_c, np.abs(pc - ours_c).max())
            print(f"{which:<8} scaled {worst_s:.2e}  clipped {worst_c:.2e}  (median alpha {s['median_alpha']})")

    for entry in stress.get("calibration", []):
        conf = max_softmax(z).numpy()
        print(f"\nECE torch {ece(conf, pred == labels):.6f}, xai-audit {entry['ece']:.6f}")

    eq = report["summary"].get("equivariance", {})
    print("\nconsistency (torch vs xai-audit): per-input prediction agreement, max |dconsistency|")
    for k, entry in enumerate(eq.get("consistency", [])):
        agree, total, worst = 0, 0, 0.0
        for j, t in enumerate(entry["transforms"]):
            xt = transformed(entry["kind"], entry.get("mode"), t["transform"], x)
            pt = logits_of(model, xt).argmax(1).numpy()
            ours = np.array([s["equivariance"]["consistency"][k]["predictions"][j] for s in report["samples"]])
            agree += (pt == ours).sum()
            total += n
            worst = max(worst, abs((pt == pred).mean() - t["consistency"]))
        ex = sidecar.get(f"equivariance/{entry['name']}")
        img_diff = 0.0
        if ex is not None:
            for m, e in enumerate(entry["examples"]):
                xt = transformed(entry["kind"], entry.get("mode"), e["transform"], x[e["index"]:e["index"] + 1])
                img_diff = max(img_diff, float((xt[0] - torch.from_numpy(ex[m])).abs().max()))
        print(f"{entry['name']:<16} {100 * agree / total:7.3f}% of {total} predictions agree, "
              f"max |dconsistency| {worst:.4f}, example images max |d| {img_diff:.2e}")

    for entry in eq.get("worst_case", []):
        ex = sidecar.get(f"equivariance/{entry['name']}")
        if ex is None:
            continue
        d = max(float((rigid(x[e["index"]:e["index"] + 1], e["transform"])[0] - torch.from_numpy(ex[m])).abs().max())
                for m, e in enumerate(entry["examples"]))
        print(f"{entry['name']:<16} example images vs torchvision affine: max |d| {d:.2e}")

    print("\nLie derivatives (exact) vs torch.func.jvp")
    for k, entry in enumerate(eq.get("lie_derivative", [])):
        if entry["method"] != "exact":
            continue
        f = lambda inp: torch.softmax(model(inp).double(), 1)  # noqa: E731
        for j, t in enumerate(entry["transforms"]):
            ref = []
            for i in range(0, n, 100):
                xb = x[i:i + 100]
                v = generator(xb, t["transform"], entry["border"])
                _, dp = torch.func.jvp(f, (xb,), (v,))
                ref.append(dp.detach().abs().mean(1))
            ref = torch.cat(ref).numpy()
            ours = np.array([s["equivariance"]["lie_derivative"][k]["values"][j] for s in report["samples"]])
            rel = np.abs(ref - ours) / np.maximum(np.abs(ref), 1e-12)
            print(f"{entry['name']:<24} {t['transform']:<12} mean torch {ref.mean():.6f} ours {ours.mean():.6f}; "
                  f"per-input relative diff median {np.median(rel):.1e}, 99th pct {np.percentile(rel, 99):.1e}, "
                  f"max {rel.max():.1e} (abs {np.abs(ref - ours).max():.1e})")


if __name__ == "__main__":
    main()
