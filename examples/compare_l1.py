"""Compare xai-audit's L1 attacks with their reference implementations.

On one model and the shipped MNIST digits, at one L1 budget:

- FGM-L1 (`fgsm`, norm "l1") against Foolbox's L1FastGradientAttack,
- PGD-L1 (`pgd`, norm "l1", sparse L1 descent, no random start) against
  Foolbox's SparseL1DescentAttack with the same steps, step size and quantile,
- APGD-L1 (`apgd`, norm "l1", CE loss, 1 restart) against the original
  AutoAttack code (fra31/auto-attack, autopgd_base.APGDAttack with
  norm='L1'), or ART's AutoProjectedGradientDescent(norm=1) without it,
  over several seeds on both sides (random starts),
- Square-L1 (`square`, norm "l1", `rescale_schedule = false`, as AutoAttack
  runs it) against the original AutoAttack code (square.SquareAttack with
  norm='L1', resc_schedule=False), over several seeds on both sides; it
  needs --autoattack-src (torchattacks' Square has no L1 version).

The torch model is rebuilt from the model file by export_pytorch.load. The
script writes a plan, runs `xai-audit run` on it, reruns each attack with the
reference, and prints per attack both robust accuracies, their difference
and the share of inputs whose adversarial prediction agrees.

    python examples/compare_l1.py assets/mnist_cnn.safetensors --eps 10 -n 1000 \
        --autoattack-src /tmp/auto-attack

The AutoAttack package is not on PyPI: pass a checkout of its source (the
folder holding `autoattack/`). Foolbox returns the last iterate while
xai-audit keeps the best point per input, so xai-audit's robust accuracy can
only be lower or equal where the two otherwise agree.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_pytorch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "assets", "mnist-sample", "sample-images-idx3-ubyte.gz")


def plan_text(eps, pgd_steps, apgd_steps, attacks, use_largereps=False, square_queries=5000):
    """A plan with the comparison's attacks (`attacks`: which of fgm, pgd, apgd, square)."""
    out = ["seed = 0", "batch_size = 100", ""]
    if "fgm" in attacks:
        out += ["[[attack]]", 'name = "fgm-l1"', 'kind = "fgsm"', 'norm = "l1"', f"eps = {eps}", ""]
    if "pgd" in attacks:
        out += ["[[attack]]", 'name = "pgd-l1"', 'kind = "pgd"', 'norm = "l1"', f"eps = {eps}",
                f"steps = {pgd_steps}", f"step_size = {0.2 * eps}", "quantile = 0.99",
                "random_start = false", ""]
    if "apgd" in attacks:
        out += ["[[attack]]", 'name = "apgd-l1"', 'kind = "apgd"', 'norm = "l1"', f"eps = {eps}",
                f"steps = {apgd_steps}", 'loss = "ce"', "restarts = 1",
                f"use_largereps = {'true' if use_largereps else 'false'}", ""]
    if "square" in attacks:
        out += ["[[attack]]", 'name = "square-l1"', 'kind = "square"', 'norm = "l1"', f"eps = {eps}",
                f"queries = {square_queries}", "p_init = 0.8", "restarts = 1", "rescale_schedule = false", ""]
    return "\n".join(out)


def run_ours(binary, model, plan, n, seed, out_dir, tag):
    plan_path = os.path.join(out_dir, f"plan-{tag}.toml")
    report_path = os.path.join(out_dir, f"report-{tag}.json")
    with open(plan_path, "w") as f:
        f.write(plan)
    started = time.time()
    subprocess.run([binary, "run", model, "--plan", plan_path, "--limit", str(n), "--seed", str(seed),
                    "--out", report_path], check=True, stdout=subprocess.DEVNULL)
    seconds = time.time() - started
    report = json.load(open(report_path))
    results = {}
    for k, spec in enumerate(report["plan"]["attacks"]):
        preds = np.array([s["attacks"][k]["prediction"] for s in report["samples"]])
        l1 = np.array([s["attacks"][k]["perturbation_l1"] for s in report["samples"]])
        results[spec["name"]] = (report["summary"]["attacks"][k]["robust_accuracy"], preds, l1.max())
    return results, seconds


def batched(attack, x, y, batch_size):
    out = []
    for i in range(0, len(x), batch_size):
        out.append(attack(x[i:i + batch_size], y[i:i + batch_size]))
    return torch.cat(out)


def predict(model, x):
    with torch.no_grad():
        return torch.cat([model(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)]).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--eps", type=float, default=10.0, help="L1 budget, inputs in [0, 1]")
    ap.add_argument("-n", type=int, default=1000, help="inputs (of the 1,000 shipped digits)")
    ap.add_argument("--pgd-steps", type=int, default=10, help="Foolbox's default 10")
    ap.add_argument("--apgd-steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3, help="seeds per side for APGD and Square")
    ap.add_argument("--square-queries", type=int, default=5000, help="AutoAttack's 5,000")
    ap.add_argument("--use-largereps", action="store_true", help="AutoAttack's L1 3ε/2ε/ε schedule")
    ap.add_argument("--autoattack-src", help="a folder holding the autoattack package's source")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "xai-audit"))
    ap.add_argument("--out-dir", default="/tmp/compare_l1")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--only", default="fgm,pgd,apgd", help="comma-separated subset of fgm,pgd,apgd,square")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    only = set(args.only.split(","))

    model = export_pytorch.load(args.model).eval()
    n = args.n
    images = export_pytorch.read_idx(DATA)[:n].astype(np.float32) / 255.0
    labels = export_pytorch.read_idx(DATA.replace("images-idx3", "labels-idx1"))[:n].astype(np.int64)
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(labels)
    clean = predict(model, x)
    print(f"{args.model}: {n} inputs, clean accuracy {100 * (clean == labels).mean():.2f}%, L1 ε {args.eps}")

    if "square" in only and not args.autoattack_src:
        sys.exit("Square-L1's reference is AutoAttack's own code: pass --autoattack-src")
    plan = plan_text(args.eps, args.pgd_steps, args.apgd_steps, only & {"fgm", "pgd", "apgd", "square"},
                     args.use_largereps, args.square_queries)
    ours, ours_seconds = run_ours(args.binary, args.model, plan, n, 0, args.out_dir, "seed0")
    print(f"xai-audit, seed 0: {ours_seconds:.1f} s for {', '.join(ours)}")
    rows = []

    def row(name, theirs_preds, theirs_seconds, ours_acc, ours_preds, note=""):
        theirs_acc = float((theirs_preds == labels).mean())
        agree = float((theirs_preds == ours_preds).mean())
        rows.append((name, theirs_acc, ours_acc, agree, theirs_seconds, note))

    if {"fgm", "pgd"} & only:
        import foolbox as fb
        fmodel = fb.PyTorchModel(model, bounds=(0, 1))

        def foolbox_attack(attack):
            return lambda xb, yb: attack(fmodel, xb, yb, epsilons=args.eps)[1]

    if "fgm" in only:
        started = time.time()
        adv = batched(foolbox_attack(fb.attacks.L1FastGradientAttack()), x, y, args.batch_size)
        l1 = (adv - x).abs().flatten(1).sum(1).max().item()
        row("FGM-L1", predict(model, adv), time.time() - started, *ours["fgm-l1"][:2],
            f"Foolbox L1FastGradientAttack; max ‖δ‖₁ Foolbox {l1:.4f}, ours {ours['fgm-l1'][2]:.4f}")
    if "pgd" in only:
        started = time.time()
        attack = fb.attacks.SparseL1DescentAttack(quantile=0.99, rel_stepsize=0.2, steps=args.pgd_steps,
                                                  random_start=False)
        adv = batched(foolbox_attack(attack), x, y, args.batch_size)
        l1 = (adv - x).abs().flatten(1).sum(1).max().item()
        row("PGD-L1 (SLIDE)", predict(model, adv), time.time() - started, *ours["pgd-l1"][:2],
            f"Foolbox SparseL1DescentAttack, {args.pgd_steps} steps; max ‖δ‖₁ Foolbox {l1:.4f}, ours {ours['pgd-l1'][2]:.4f}")
    if "apgd" in only:
        our_accs, our_preds = [ours["apgd-l1"][0]], [ours["apgd-l1"][1]]
        for seed in range(1, args.seeds):
            res, _ = run_ours(args.binary, args.model,
                              plan_text(args.eps, args.pgd_steps, args.apgd_steps, {"apgd"}, args.use_largereps),
                              n, seed, args.out_dir, f"apgd-seed{seed}")
            our_accs.append(res["apgd-l1"][0])
            our_preds.append(res["apgd-l1"][1])
        if args.autoattack_src:
            sys.path.insert(0, args.autoattack_src)
            from autoattack.autopgd_base import APGDAttack

            def make(seed):
                a = APGDAttack(model, norm="L1", eps=args.eps, n_iter=args.apgd_steps, n_restarts=1, loss="ce",
                               seed=seed, device="cpu", use_largereps=args.use_largereps)
                return a.perturb
            ref = "AutoAttack APGDAttack(norm='L1')"
        else:
            from art.attacks.evasion import AutoProjectedGradientDescent
            from art.estimators.classification import PyTorchClassifier
            clf = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                    nb_classes=10, clip_values=(0.0, 1.0))

            def make(seed):
                np.random.seed(seed)
                a = AutoProjectedGradientDescent(clf, norm=1, eps=args.eps, eps_step=args.eps,
                                                 max_iter=args.apgd_steps, nb_random_init=1, verbose=False)
                return lambda xb, yb: torch.from_numpy(a.generate(xb.numpy(), yb.numpy()))
            ref = "ART AutoProjectedGradientDescent(norm=1)"
        started = time.time()
        their_preds = [predict(model, batched(make(seed), x, y, args.batch_size)) for seed in range(args.seeds)]
        seconds = (time.time() - started) / args.seeds
        their_accs = [float((p == labels).mean()) for p in their_preds]
        agree = np.mean([(a == b).mean() for a in their_preds for b in our_preds])
        self_agree_ref = np.mean([(a == b).mean() for i, a in enumerate(their_preds) for b in their_preds[i + 1:]]) \
            if args.seeds > 1 else 1.0
        name = "APGD-L1" + (" (largereps)" if args.use_largereps else "")
        rows.append((name, float(np.mean(their_accs)), float(np.mean(our_accs)), agree, seconds,
                     f"{ref}; seeds: reference {', '.join(f'{100 * a:.1f}' for a in their_accs)}, "
                     f"ours {', '.join(f'{100 * a:.1f}' for a in our_accs)}; "
                     f"reference vs itself across seeds agrees {100 * self_agree_ref:.1f}%"))

    if "square" in only:
        our_accs, our_preds = [ours["square-l1"][0]], [ours["square-l1"][1]]
        our_max = [ours["square-l1"][2]]
        for seed in range(1, args.seeds):
            res, _ = run_ours(args.binary, args.model,
                              plan_text(args.eps, args.pgd_steps, args.apgd_steps, {"square"},
                                        square_queries=args.square_queries),
                              n, seed, args.out_dir, f"square-seed{seed}")
            our_accs.append(res["square-l1"][0])
            our_preds.append(res["square-l1"][1])
            our_max.append(res["square-l1"][2])
        sys.path.insert(0, args.autoattack_src)
        from autoattack.square import SquareAttack
        started = time.time()
        their_preds, their_max = [], []
        for seed in range(args.seeds):
            # As AutoAttack builds it (autoattack.py): p_init .8, 5,000 queries, 1 restart, no rescaling.
            a = SquareAttack(model, norm="L1", eps=args.eps, n_queries=args.square_queries, p_init=.8,
                             n_restarts=1, seed=seed, device="cpu", resc_schedule=False)
            adv = batched(a.perturb, x, y, args.batch_size)
            their_preds.append(predict(model, adv))
            their_max.append((adv - x).abs().flatten(1).sum(1).max().item())
        seconds = (time.time() - started) / args.seeds
        their_accs = [float((p == labels).mean()) for p in their_preds]
        agree = np.mean([(a == b).mean() for a in their_preds for b in our_preds])
        self_agree_ref = np.mean([(a == b).mean() for i, a in enumerate(their_preds) for b in their_preds[i + 1:]]) \
            if args.seeds > 1 else 1.0
        rows.append(("Square-L1", float(np.mean(their_accs)), float(np.mean(our_accs)), agree, seconds,
                     f"AutoAttack SquareAttack(norm='L1'), {args.square_queries} queries; seeds: reference "
                     f"{', '.join(f'{100 * a:.1f}' for a in their_accs)}, ours "
                     f"{', '.join(f'{100 * a:.1f}' for a in our_accs)}; reference vs itself across seeds agrees "
                     f"{100 * self_agree_ref:.1f}%; max ‖δ‖₁ reference {max(their_max):.4f}, ours {max(our_max):.4f}"))

    print(f"{'attack':<22} {'reference':>10} {'xai-audit':>10} {'diff (pp)':>10} {'agreement':>10} {'ref s':>7}")
    for name, theirs, ours_acc, agree, seconds, note in rows:
        print(f"{name:<22} {100 * theirs:>9.2f}% {100 * ours_acc:>9.2f}% {100 * (ours_acc - theirs):>+10.2f} "
              f"{100 * agree:>9.2f}% {seconds:>7.1f}")
        if note:
            print(f"    {note}")


if __name__ == "__main__":
    main()
