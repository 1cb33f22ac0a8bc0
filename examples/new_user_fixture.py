#!/usr/bin/env python3
"""The new-user fixture: a small PyTorch classifier as a new user would write
it, exported by the bridge, with held-out images and PyTorch's logits.

Writes tests/fixtures/new_user/ (see its README.md):

- model.safetensors: a 3x32x32, 4-class classifier (classes bird, cat, dog,
  frog) with BatchNorm, a skip connection written in forward
  (``x + self.block(x)``) and functional ``F.relu`` / ``F.max_pool2d`` /
  ``F.adaptive_avg_pool2d`` / ``torch.flatten``, trained briefly on a
  synthetic but learnable data set, exported by
  ``examples/export_pytorch.py`` (its own state_dict names, a version-2 spec
  traced by torch.fx, class names, input range [0, 1], the training
  mean/std applied inside the model);
- images/<class>/NNN.png: 15 held-out 32x32 RGB images per class;
- reference.safetensors: float32 ``x`` [60, 3, 32, 32] (the PNG bytes / 255,
  in sorted path order: classes alphabetically, files by number), ``labels``
  [60] (class indices as float32) and ``logits`` [60, 4] computed by the
  PyTorch model the user trained (its own forward, on ``(x - mean) / std``).

The data: four classes told apart by texture and colour, each image with a random
colour (hue drawn around a class hue; the tails overlap), random
frequency, phase and orientation, a random brightness and pixel noise:
bird = stripes, cat = concentric rings, dog = a checkerboard, frog = spots.

Deterministic: seeded, one CPU thread; reruns write the same bytes on the same
machine (torch and zlib versions). Run from the repository root:

    /work/venv/bin/python examples/new_user_fixture.py [--out tests/fixtures/new_user]

It prints the accuracy PyTorch measures on the 60 PNG images and on 800
further held-out images, and checks that the exported file, rebuilt in
PyTorch by the bridge, gives the same logits as the trained model.
"""

import argparse
import colorsys
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_pytorch import export, load, spec_from_module  # noqa: E402

CLASSES = ["bird", "cat", "dog", "frog"]
SIZE = 32
PER_CLASS_PNG = 15


class Net(nn.Module):
    """What a user might write: modules for the layers with weights, the
    wiring and activations in forward."""

    def __init__(self, classes=4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.block = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(32))
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.max_pool2d(x, 2)                     # 32 -> 16
        x = F.relu(x + self.block(x))              # the skip connection
        x = F.relu(self.down(x))                   # 16 -> 8
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


def make_images(labels, rng):
    """uint8 images [N, 32, 32, 3] for the class indices ``labels``."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    out = np.empty((len(labels), SIZE, SIZE, 3), np.uint8)
    for i, label in enumerate(labels):
        freq = rng.uniform(2.5, 5.0)
        phase = rng.uniform(0, 2 * np.pi)
        if label == 0:                                  # bird: stripes
            angle = rng.uniform(0, np.pi)
            u = np.cos(angle) * xx + np.sin(angle) * yy
            pattern = 0.5 + 0.5 * np.sin(2 * np.pi * freq * u + phase)
        elif label == 1:                                # cat: concentric rings
            cy, cx = rng.uniform(0.35, 0.65, 2)
            r = np.hypot(yy - cy, xx - cx)
            pattern = 0.5 + 0.5 * np.sin(2 * np.pi * freq * r + phase)
        elif label == 2:                                # dog: checkerboard
            oy, ox = rng.uniform(0, 1, 2)
            pattern = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * freq * (yy + oy)) *
                                          np.sin(2 * np.pi * freq * (xx + ox)))
        else:                                           # frog: spots
            pattern = np.zeros_like(xx)
            for _ in range(rng.integers(4, 9)):
                cy, cx = rng.uniform(0, 1, 2)
                s = rng.uniform(0.05, 0.1)
                spot = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
                pattern = np.maximum(pattern, spot)
        # A colour near the class's hue (a tail overlaps its neighbours'), a background.
        hue = (label / 4 + rng.normal(0, 0.06)) % 1.0
        fg = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.5, 1.0), rng.uniform(0.6, 1.0)))
        bg = np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.4),
                                          rng.uniform(0.1, 0.5)))
        img = pattern[..., None] * fg + (1 - pattern[..., None]) * bg
        img = img + rng.normal(0, 0.04, img.shape)
        out[i] = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return out


def to_tensor(images):
    """uint8 [N, H, W, 3] -> float32 [N, 3, H, W] in [0, 1] (bytes / 255)."""
    return torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0))


def accuracy(model, x, y, mean, std):
    with torch.no_grad():
        return float((model((x - mean) / std).argmax(1) == y).float().mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/new_user")
    parser.add_argument("--train", type=int, default=4000, help="training images (default 4000)")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    out = Path(args.out)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    started = time.perf_counter()

    y_train = np.arange(args.train) % 4
    x_train = to_tensor(make_images(y_train, rng))
    y_png = np.repeat(np.arange(4), PER_CLASS_PNG)
    png_images = make_images(y_png, rng)
    y_more = np.arange(800) % 4
    x_more = to_tensor(make_images(y_more, rng))
    y_train, y_more = torch.from_numpy(y_train), torch.from_numpy(y_more)

    # Per-channel statistics of the training set, rounded as a user would
    # copy them into a transform.
    mean_list = [round(float(v), 3) for v in x_train.mean(dim=(0, 2, 3))]
    std_list = [round(float(v), 3) for v in x_train.std(dim=(0, 2, 3))]
    mean = torch.tensor(mean_list).view(1, 3, 1, 1)
    std = torch.tensor(std_list).view(1, 3, 1, 1)

    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = args.epochs * (args.train // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(args.train, generator=gen)
        for k in range(args.train // 64):
            idx = perm[k * 64:(k + 1) * 64]
            loss = F.cross_entropy(model((x_train[idx] - mean) / std), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        print(f"epoch {epoch + 1:2d}: loss {loss.item():.3f}, held-out accuracy "
              f"{100 * accuracy(model, x_more, y_more, mean, std):.1f}% "
              f"({time.perf_counter() - started:.0f} s)")
    model.eval()

    # The PNG files, then the reference from the files' bytes.
    images_dir = out / "images"
    for c in CLASSES:
        (images_dir / c).mkdir(parents=True, exist_ok=True)
        for old in (images_dir / c).glob("*.png"):
            old.unlink()
    for i, (img, label) in enumerate(zip(png_images, y_png)):
        path = images_dir / CLASSES[label] / f"{i % PER_CLASS_PNG:03d}.png"
        Image.fromarray(img, mode="RGB").save(path, optimize=True)
    paths = sorted(images_dir.glob("*/*.png"))
    x = to_tensor(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]))
    labels = torch.tensor([CLASSES.index(p.parent.name) for p in paths])
    with torch.no_grad():
        logits = model((x - mean) / std)
    save_file({"x": x.contiguous(), "labels": labels.float(), "logits": logits.contiguous()},
              str(out / "reference.safetensors"))

    spec = spec_from_module(model, (3, SIZE, SIZE), mean=mean_list, std=std_list,
                            classes=CLASSES, name="new-user")
    model_path = out / "model.safetensors"
    export(model, model_path, spec)
    assert set(load_file(str(model_path))) == set(model.state_dict()), "weight names changed"
    with torch.no_grad():
        rebuilt = load(model_path)(x)
    diff = float((rebuilt - logits).abs().max())
    assert diff < 1e-5, f"the exported model differs from the trained one by {diff}"

    acc_png = float((logits.argmax(1) == labels).float().mean())
    acc_more = accuracy(model, x_more, y_more, mean, std)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"nodes: {', '.join(n['name'] for n in spec['nodes'])}")
    print(f"mean {mean_list}, std {std_list}")
    confusion = torch.zeros(4, 4, dtype=torch.long)
    with torch.no_grad():
        pred = model((x_more - mean) / std).argmax(1)
    for t, p in zip(y_more.tolist(), pred.tolist()):
        confusion[t, p] += 1
    print(f"confusion on the further held-out images (rows: true {CLASSES}):\n{confusion}")
    print(f"PyTorch accuracy: {100 * acc_png:.2f}% on the {len(paths)} PNG images, "
          f"{100 * acc_more:.2f}% on {len(y_more)} further held-out images")
    print(f"exported model vs trained model: max |logit difference| {diff:.2e}")
    print(f"wrote {out} ({total} bytes) in {time.perf_counter() - started:.0f} s")
    assert total < 1_000_000, f"{out} is {total} bytes, over 1 MB"


if __name__ == "__main__":
    main()
