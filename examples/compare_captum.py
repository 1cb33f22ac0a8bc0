"""Compare xai-audit's attribution maps with PyTorch autograd and Captum.

Reads a report and its tensor sidecar written with the settings of
attacks/captum-parity.toml, rebuilds the torch model from the model file
(export_pytorch.load: the same spec and weights, normalization inside the
model) and recomputes every map with Captum on the very inputs the report
stored (x/clean, x/adv/<attack>) and for the very classes it explained
(each record's `target`):

- saliency: torch.autograd.grad of the target logit (raw), and Captum
  Saliency (abs=True) for the `abs = true` entry;
- input x gradient: Captum InputXGradient;
- integrated gradients: Captum IntegratedGradients(method, n_steps, zero
  baseline, return_convergence_delta=True) -- maps and convergence deltas;
- smoothgrad / smoothgrad_sq: Captum NoiseTunnel(Saliency) with torch.normal
  replaced by the noise xai-audit drew (kept in the sidecar as noise/<name>,
  [N, samples, C, H, W], the row order of Captum's repeat_interleave);
- occlusion: Captum Occlusion (window and stride over all channels, baseline);
- grad_cam: Captum LayerGradCam on the spec's layer, then
  LayerAttribution.interpolate to the input size.

For each map set it prints the largest relative difference over inputs,
max_j |ours - theirs| / max_j |theirs| (per input), and for IG the largest
difference of the convergence deltas.

    cargo run --release -- run assets/mnist_cnn.safetensors \
        --plan attacks/captum-parity.toml --limit 32 --out reports/captum-parity.json
    python examples/compare_captum.py assets/mnist_cnn.safetensors reports/captum-parity.json

With --fixture OUT it instead writes the Captum references the Rust tests
check against (tests/fixtures/attributions.captum.safetensors, see
tests/fixtures/README.md):

    python examples/compare_captum.py --fixture tests/fixtures/attributions.captum.safetensors
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
from captum.attr import (InputXGradient, IntegratedGradients, LayerAttribution, LayerGradCam,
                         NoiseTunnel, Occlusion, Saliency)
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_pytorch  # noqa: E402


def rel_diff(ours, theirs):
    """Largest per-input max|a - b| / max|b| (0/0 counts as 0)."""
    n = ours.shape[0]
    a = ours.reshape(n, -1).astype(np.float64)
    b = theirs.reshape(n, -1).astype(np.float64)
    num = np.abs(a - b).max(1)
    den = np.abs(b).max(1)
    r = np.where(den > 0, num / np.where(den > 0, den, 1), num)
    return float(r.max()), int(r.argmax())


def layer_module(model, path):
    """The torch module at a spec layer position ("3", "5.body.1")."""
    parts = path.split(".")
    m = model._plan[int(parts[0])]
    i = 1
    while i < len(parts):
        kind, idx = parts[i], int(parts[i + 1])
        m = {"body": m.body, "shortcut": m.shortcut}[kind][idx] if kind != "activation" else m.activation
        i += 2
    return m


def write_fixture(out):
    """Captum references for the Rust tests, on the shipped CNN (12 digits of
    the shipped sample, explained for their labels) and on tiny_all_ops
    (Grad-CAM on layers inside residual blocks)."""
    from safetensors.torch import save_file

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    torch.manual_seed(0)
    torch.set_num_threads(1)
    t = {}
    model = export_pytorch.load(os.path.join(root, "assets/mnist_cnn.safetensors"))
    images = export_pytorch.read_idx(os.path.join(root, "assets/mnist-sample/sample-images-idx3-ubyte.gz"))
    labels = export_pytorch.read_idx(os.path.join(root, "assets/mnist-sample/sample-labels-idx1-ubyte.gz"))
    n = 12
    x = torch.from_numpy(images[:n].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels[:n].astype(np.int64))
    t["cnn/x"], t["cnn/labels"] = x, y.float()
    ig, delta = IntegratedGradients(model).attribute(
        x.clone(), target=y, n_steps=50, method="gausslegendre", return_convergence_delta=True)
    t["cnn/ig"], t["cnn/ig_delta"] = ig.detach(), delta.detach().float()
    t["cnn/saliency_abs"] = Saliency(model).attribute(x.clone().requires_grad_(), target=y, abs=True).detach()
    samples, stdev = 5, 0.2
    noise = torch.randn((n * samples,) + tuple(x.shape[1:])) * stdev
    t["cnn/smoothgrad_noise"] = noise.reshape((n, samples) + tuple(x.shape[1:]))
    real_normal = torch.normal
    torch.normal = lambda mean, std, *a, **k: noise.clone()
    try:
        for nt_type, abs_ in [("smoothgrad", False), ("smoothgrad_sq", True)]:
            t[f"cnn/{nt_type}"] = NoiseTunnel(Saliency(model)).attribute(
                x.clone(), nt_type=nt_type, nt_samples=samples, stdevs=stdev, target=y, abs=abs_).detach()
    finally:
        torch.normal = real_normal
    t["cnn/occlusion"] = Occlusion(model).attribute(
        x.clone(), sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2), baselines=0.0, target=y).detach()
    for path in ["3", "4"]:
        cam = LayerGradCam(model, layer_module(model, path)).attribute(x.clone(), target=y, relu_attributions=True)
        t[f"cnn/grad_cam_{path}"] = LayerAttribution.interpolate(cam, (28, 28), interpolate_mode="bilinear").detach()

    tiny = export_pytorch.load(os.path.join(root, "tests/fixtures/tiny_all_ops.safetensors"))
    xt = torch.rand(4, 3, 12, 12)
    yt = torch.tensor([0, 1, 2, 4])
    t["tiny/x"], t["tiny/labels"] = xt, yt.float()
    for path in ["4.body.3", "4.activation.0", "6.shortcut.1"]:
        cam = LayerGradCam(tiny, layer_module(tiny, path)).attribute(xt.clone(), target=yt, relu_attributions=False)
        t[f"tiny/grad_cam_{path}"] = LayerAttribution.interpolate(cam, (12, 12), interpolate_mode="nearest").detach()
    save_file({k: v.contiguous().float() for k, v in t.items()}, out)
    for k, v in sorted(t.items()):
        print(f"{k:<28} {tuple(v.shape)}")
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


def write_guided_fixture(out):
    """Captum's GuidedBackprop, GuidedGradCam (its default nearest
    upsampling, on the spec's last conv2d layer), DeepLift (zero
    baselines, with its convergence delta) and DeepLiftShap (4 uniform-noise
    baselines on [0, 1], stored as deeplift_shap_baselines and shared by all
    inputs; its per (input, baseline) convergence deltas) on the shipped CNN
    and the shipped residual model, 32 digits of the shipped sample explained
    for their labels."""
    from captum.attr import DeepLift, DeepLiftShap, GuidedBackprop, GuidedGradCam
    from safetensors.torch import save_file

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    torch.set_num_threads(1)
    images = export_pytorch.read_idx(os.path.join(root, "assets/mnist-sample/sample-images-idx3-ubyte.gz"))
    labels = export_pytorch.read_idx(os.path.join(root, "assets/mnist-sample/sample-labels-idx1-ubyte.gz"))
    n = 32
    x = torch.from_numpy(images[:n].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels[:n].astype(np.int64))
    t = {"x": x, "labels": y.float()}
    # Drawn before any model runs, from their own generator, so the earlier
    # entries are as they were.
    shap_baselines = torch.rand((4,) + tuple(x.shape[1:]), generator=torch.Generator().manual_seed(0))
    t["deeplift_shap_baselines"] = shap_baselines
    for name, layer in [("cnn", "3"), ("resnet", "3.body.3")]:
        model = export_pytorch.load(os.path.join(root, f"assets/mnist_{name}.safetensors"))
        # Captum hooks the nn.ReLU modules it finds in model.modules(); the
        # rebuilt model keeps its parameterless layers outside the module
        # tree, so register them (else GuidedBackprop is the plain gradient).
        model.plan_modules = torch.nn.ModuleList(model._plan)
        relus = sum(isinstance(m, torch.nn.ReLU) for m in model.modules())
        assert relus > 0, f"{name}: no nn.ReLU module for Captum to hook"
        print(f"{name}: {relus} nn.ReLU modules hooked")
        t[f"{name}/guided_backprop"] = GuidedBackprop(model).attribute(x.clone(), target=y).detach()
        t[f"{name}/guided_grad_cam"] = GuidedGradCam(model, layer_module(model, layer)).attribute(
            x.clone(), target=y).detach()
        dl, delta = DeepLift(model).attribute(x.clone(), baselines=torch.zeros_like(x), target=y,
                                              return_convergence_delta=True)
        t[f"{name}/deeplift"], t[f"{name}/deeplift_delta"] = dl.detach(), delta.detach().float()
        dls, delta = DeepLiftShap(model).attribute(x.clone(), baselines=shap_baselines.clone(), target=y,
                                                   return_convergence_delta=True)
        t[f"{name}/deeplift_shap"] = dls.detach()
        t[f"{name}/deeplift_shap_delta"] = delta.detach().float().reshape(n, -1)
    save_file({k: v.contiguous().float() for k, v in t.items()}, out)
    for k, v in sorted(t.items()):
        print(f"{k:<28} {tuple(v.shape)}")
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("report", nargs="?")
    ap.add_argument("--fixture", metavar="OUT", help="write the Captum references for the Rust tests")
    ap.add_argument("--guided-fixture", metavar="OUT",
                    help="write Captum's GuidedBackprop, GuidedGradCam, DeepLift and DeepLiftShap references for the Rust tests")
    args = ap.parse_args()
    if args.fixture:
        write_fixture(args.fixture)
        return
    if args.guided_fixture:
        write_guided_fixture(args.guided_fixture)
        return
    if not (args.model and args.report):
        ap.error("MODEL and REPORT are required (or --fixture OUT)")

    model = export_pytorch.load(args.model)
    report = json.load(open(args.report))
    tensors = load_file(os.path.join(os.path.dirname(args.report), report["tensors"]))
    n = report["summary"]["count"]
    print(f"{n} inputs of {report['data']['source']}; model {args.model}")
    print(f"{'entry':<18} {'inputs':<16} {'reference':<34} {'max rel diff':>12}  notes")

    failures = 0

    def show(name, variant, ref, ours, theirs, tol, note=""):
        nonlocal failures
        r, worst = rel_diff(ours, theirs)
        ok = r <= tol
        failures += not ok
        print(f"{name:<18} {variant:<16} {ref:<34} {r:>12.2e}  {'ok' if ok else 'FAIL'} (tol {tol:g}, worst input {worst}){note}")

    for entry in report["plan"].get("attributions", []):
        name, method = entry["name"], entry["method"]
        entry_samples = [next(a for a in s["attributions"] if a["name"] == name) for s in report["samples"]]
        variants = ["clean"] + entry["on"]
        for variant in variants:
            if variant == "clean":
                x = torch.from_numpy(tensors["x/clean"])
                targets = [a["clean"]["target"] for a in entry_samples]
                deltas = [a["clean"].get("convergence_delta") for a in entry_samples]
            else:
                x = torch.from_numpy(tensors[f"x/adv/{variant}"])
                recs = [next(r for r in a["attacks"] if r["attack"] == variant) for a in entry_samples]
                targets = [r["map"]["target"] for r in recs]
                deltas = [r["map"].get("convergence_delta") for r in recs]
            t = torch.tensor(targets)
            ours = tensors[f"attr/{name}/{variant}"]

            if method == "saliency":
                if entry.get("abs"):
                    theirs = Saliency(model).attribute(x.clone().requires_grad_(), target=t, abs=True)
                    show(name, variant, "captum Saliency(abs=True)", ours, theirs.detach().numpy(), 1e-5)
                else:
                    xg = x.clone().requires_grad_()
                    out = model(xg)
                    grad, = torch.autograd.grad(out.gather(1, t[:, None]).sum(), xg)
                    show(name, variant, "torch autograd d logit / dx", ours, grad.numpy(), 1e-5)
            elif method == "input_x_gradient":
                theirs = InputXGradient(model).attribute(x.clone().requires_grad_(), target=t)
                show(name, variant, "captum InputXGradient", ours, theirs.detach().numpy(), 1e-5)
            elif method == "integrated_gradients":
                assert entry["baseline"] == "zero", "only the zero baseline is deterministic"
                theirs, delta = IntegratedGradients(model).attribute(
                    x.clone(), target=t, n_steps=entry["steps"], method=entry["integration"],
                    return_convergence_delta=True)
                d_ours = np.array(deltas, dtype=np.float64)
                d_theirs = delta.detach().numpy().astype(np.float64)
                with torch.no_grad():
                    gap = (model(x).gather(1, t[:, None]) - model(torch.zeros_like(x)).gather(1, t[:, None]))[:, 0]
                d_diff = np.abs(d_ours - d_theirs)
                note = (f"; deltas: ours mean |d| {np.abs(d_ours).mean():.3e}, captum {np.abs(d_theirs).mean():.3e}, "
                        f"max |d_ours - d_captum| {d_diff.max():.2e} "
                        f"({(d_diff / np.abs(gap.numpy())).max():.1e} of |F(x) - F(0)|)")
                show(name, variant, f"captum IG {entry['integration']} {entry['steps']}", ours,
                     theirs.detach().numpy(), 1e-4, note)
                if not (d_diff / np.maximum(np.abs(gap.numpy()), 1e-6)).max() <= 1e-4:
                    failures += 1
                    print(f"{'':<18} convergence deltas differ by more than 1e-4 of |F(x) - F(0)|: FAIL")
            elif method == "smoothgrad":
                noise = torch.from_numpy(tensors[f"noise/{name}"])   # [N, S, C, H, W]
                samples = noise.shape[1]
                fixed = noise.reshape((-1,) + tuple(noise.shape[2:]))
                real_normal = torch.normal

                def fake_normal(mean, std, *a, **k):
                    assert tuple(std.shape) == tuple(fixed.shape), (std.shape, fixed.shape)
                    assert torch.allclose(std, torch.full_like(std, entry["stdev"])), "stdev differs"
                    return fixed.clone()

                torch.normal = fake_normal
                try:
                    theirs = NoiseTunnel(Saliency(model)).attribute(
                        x.clone(), nt_type=entry["nt_type"], nt_samples=samples,
                        stdevs=entry["stdev"], target=t, abs=entry["abs"])
                finally:
                    torch.normal = real_normal
                show(name, variant, f"captum NoiseTunnel {entry['nt_type']}", ours,
                     theirs.detach().numpy(), 1e-5, f"; fixed noise, {samples} samples, stdev {entry['stdev']}")
            elif method == "occlusion":
                c = x.shape[1]
                wh, ww = entry["window"]
                sh, sw = entry["stride"]
                theirs = Occlusion(model).attribute(
                    x.clone(), sliding_window_shapes=(c, wh, ww), strides=(c, sh, sw),
                    baselines=entry["baseline_value"], target=t)
                show(name, variant, f"captum Occlusion {wh}x{ww}/{sh}x{sw}", ours,
                     theirs.detach().numpy(), 1e-4)
            elif method == "grad_cam":
                layer = layer_module(model, entry["layer"])
                cam = LayerGradCam(model, layer).attribute(x.clone(), target=t,
                                                           relu_attributions=entry["relu"])
                up = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode=entry["upsample"])
                theirs = up.expand(-1, x.shape[1], -1, -1)
                show(name, variant, f"captum LayerGradCam layer {entry['layer']}", ours,
                     theirs.detach().numpy(), 1e-5)
            else:
                print(f"{name:<18} {variant:<16} no Captum counterpart for {method}")
    print("all within tolerance" if failures == 0 else f"{failures} comparisons out of tolerance")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
