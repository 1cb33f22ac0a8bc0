"""Builds the speed-benchmark fixtures under target/bench-fixtures/ (seeded,
random weights: for speed, not accuracy; not used by any test).

    python benches/fixtures.py [--out target/bench-fixtures]
        [--only resnet18,mnist,resnet50]

Writes, each exported with its spec through examples/export_pytorch.py:
- resnet18_cifar.safetensors (and the same function as resnet18_cifar.onnx,
  exported by torch.onnx.export, opset 17): a CIFAR-shaped ResNet-18 (3x32x32, 3x3 stem conv
  64 + BN + ReLU, no max pool, BasicBlocks 64-128-256-512 x2 with 1x1 stride-2
  conv + BN projection shortcuts where the shape changes, global average pool,
  linear to the 10 CIFAR-10 classes; CIFAR mean/std inside the model; 11.2M
  parameters, 0.56 G multiply-adds per forward);
  cifar_random/: 1,000 random 32x32 RGB PNGs in class-named subfolders;
- resnet50_224.safetensors (and resnet50_224.onnx): an ImageNet-shaped ResNet-50 (3x224x224, 7x7
  stride-2 stem, 3x3 stride-2 max pool, Bottleneck blocks 3-4-6-3 of
  expansion 4, global average pool, linear to 1,000 classes `c000`..`c999`;
  ImageNet mean/std inside; 25.6M parameters, 4.1 G multiply-adds);
  imagenet_random/: 32 random 224x224 RGB PNGs;
- mnist_resnet_random.safetensors: the small residual MNIST CNN of
  examples/train_resnet.py's shape (conv-BN-ReLU stem, one projection-shortcut
  residual block, 2x2 average pool, linear-GELU-dropout-linear head; 115,770
  parameters), random weights -- only when assets/mnist_resnet.safetensors
  (the trained one) is absent; mnist_relabelled/: the 1,000 shipped digits
  as an IDX pair labelled by that model's predictions.

Weights are torch's default initialisation under a fixed seed; each batch
norm gets random weight and bias, and running statistics measured on the
fixture's own images then randomly perturbed (so folding BN into a
convolution is exercised with non-trivial statistics, while activations keep
a sane scale through 16 or 50 layers); the last layer's bias is then set so
that the classes are predicted about equally often. Every image is labelled
by the model's own prediction on it as xai-audit reads it (PNG bytes / 255),
so clean accuracy is 100% and robust accuracy measures the attack. Random
networks are fragile: at eps 0.1 nothing stays robust; to check that both
tools' robust accuracies agree, use a small budget too (on the first 100
CIFAR images, PGD-10 at --eps 0.0005 --step-size 0.000125 leaves 28%).

Then, e.g. (see README.md, "Speed"):

    benches/pgd_vs_torchattacks.sh --model target/bench-fixtures/resnet18_cifar.safetensors \\
        --data target/bench-fixtures/cifar_random --steps 10 --batch-size 100 --limit 100
    benches/pgd_vs_torchattacks.sh --model target/bench-fixtures/resnet50_224.safetensors \\
        --data target/bench-fixtures/imagenet_random --steps 5 --batch-size 16 --limit 32
    benches/pgd_vs_torchattacks.sh --model target/bench-fixtures/mnist_resnet_random.safetensors \\
        --data target/bench-fixtures/mnist_relabelled --steps 40
"""

import argparse
import collections
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
from export_pytorch import (  # noqa: E402
    GlobalAvgPool2d, Residual, export, load, read_idx, spec_from_module)

CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def conv_bn(cin, cout, k, stride=1, padding=0):
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(cout)]


def shortcut(cin, cout, stride):
    """A 1x1 conv + BN projection where the shape changes, else identity."""
    return nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else None


def basic_block(cin, cout, stride):
    body = nn.Sequential(*conv_bn(cin, cout, 3, stride, 1), nn.ReLU(), *conv_bn(cout, cout, 3, 1, 1))
    return Residual(body, shortcut(cin, cout, stride), activation=nn.ReLU())


def bottleneck(cin, width, stride):
    cout = 4 * width
    body = nn.Sequential(*conv_bn(cin, width, 1), nn.ReLU(),
                         *conv_bn(width, width, 3, stride, 1), nn.ReLU(),
                         *conv_bn(width, cout, 1))
    return Residual(body, shortcut(cin, cout, stride), activation=nn.ReLU())


def resnet18_cifar():
    layers = [("stem", nn.Sequential(*conv_bn(3, 64, 3, 1, 1), nn.ReLU()))]
    cin = 64
    for stage, (width, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], 1):
        blocks = [basic_block(cin, width, stride), basic_block(width, width, 1)]
        layers.append((f"layer{stage}", nn.Sequential(*blocks)))
        cin = width
    layers += [("pool", GlobalAvgPool2d()), ("fc", nn.Linear(512, 10))]
    return nn.Sequential(collections.OrderedDict(layers))


def resnet50_224():
    layers = [("stem", nn.Sequential(*conv_bn(3, 64, 7, 2, 3), nn.ReLU(),
                                     nn.MaxPool2d(3, stride=2, padding=1)))]
    cin = 64
    for stage, (width, count, stride) in enumerate(
            [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 1):
        blocks = []
        for i in range(count):
            blocks.append(bottleneck(cin, width, stride if i == 0 else 1))
            cin = 4 * width
        layers.append((f"layer{stage}", nn.Sequential(*blocks)))
    layers += [("pool", GlobalAvgPool2d()), ("fc", nn.Linear(2048, 1000))]
    return nn.Sequential(collections.OrderedDict(layers))


def mnist_resnet():
    """examples/train_resnet.py's network (dropout 0.2)."""
    import train_resnet  # examples/ is on sys.path (see the imports above)

    return train_resnet.build_model(0.2)


@torch.no_grad()
def randomize(model, x_norm, gen):
    """Random BN weight/bias; running statistics measured on `x_norm` (the
    normalized calibration images), then perturbed; the last linear layer's
    bias balancing the classes over `x_norm`."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.weight.copy_(0.75 + 0.5 * torch.rand(bn.num_features, generator=gen))
        bn.bias.copy_(0.2 * torch.randn(bn.num_features, generator=gen))
        bn.reset_running_stats()
        bn.momentum = None                    # a plain average of the batches seen
    model.train()
    for start in range(0, len(x_norm), 50):
        model(x_norm[start:start + 50])
    model.eval()
    for bn in bns:
        std = bn.running_var.sqrt()
        bn.running_mean.add_(0.1 * std * torch.randn(bn.num_features, generator=gen))
        bn.running_var.mul_(0.8 + 0.4 * torch.rand(bn.num_features, generator=gen))
        bn.momentum = 0.1
        bn.num_batches_tracked.fill_(100)
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    logits = torch.cat([model(x_norm[s:s + 50]) for s in range(0, len(x_norm), 50)])
    fc.bias.sub_(logits.mean(0))


def random_images(n, size, rng):
    """`n` random RGB images as uint8 [N, H, W, 3]: smooth colour fields
    (8x8 noise upsampled) plus pixel noise, so features vary across images."""
    coarse = rng.uniform(0, 255, size=(n, 3, 8, 8)).astype(np.float32)
    smooth = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(size, size),
                                             mode="bilinear", align_corners=False).numpy()
    noise = rng.normal(0, 40, size=(n, 3, size, size))
    return np.clip(smooth + noise, 0, 255).round().astype(np.uint8).transpose(0, 2, 3, 1)


def normalized(x, mean, std):
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


@torch.no_grad()
def predict(loaded, x):
    return torch.cat([loaded(x[s:s + 50]).argmax(1) for s in range(0, len(x), 50)]).numpy()


def write_folder(folder, images, labels, classes):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(images, labels)):
        d = folder / classes[label]
        d.mkdir(exist_ok=True)
        Image.fromarray(img, "RGB").save(d / f"{i:04d}.png")


def build_rgb(out, name, model_fn, size, count, mean, std, classes, seed):
    """Model `name`.safetensors and an image folder of `count` random images
    labelled by its predictions."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = model_fn()
    images = random_images(count, size, rng)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0))
    randomize(model, normalized(x[:200], mean, std), gen)
    spec = spec_from_module(model, (3, size, size), mean=mean, std=std, classes=classes, name=name)
    path = out / f"{name}.safetensors"
    export(model, path, spec)
    loaded = load(path)
    labels = predict(loaded, x)
    # The same function as ONNX (normalization as Sub/Div inside the graph),
    # to time the ONNX import against the hand-written spec.
    onnx_path = out / f"{name}.onnx"
    torch.onnx.export(loaded.eval(), (x[:1],), str(onnx_path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    folder = out / {"resnet18_cifar": "cifar_random", "resnet50_224": "imagenet_random"}[name]
    if folder.exists():
        shutil.rmtree(folder)            # an empty class folder left over is an error
    write_folder(folder, images, labels, classes)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {path} ({params:,} parameters) and {folder} ({count} images, "
          f"{len(set(labels.tolist()))} classes predicted) in {time.perf_counter() - started:.0f} s")


def build_mnist(out, seed):
    trained = ROOT / "assets" / "mnist_resnet.safetensors"
    if trained.exists():
        print(f"{trained} exists: benchmark it on the shipped digits, no random fixture made")
        return
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    sample = ROOT / "assets" / "mnist-sample"
    digits = read_idx(sample / "sample-images-idx3-ubyte.gz")
    x = torch.from_numpy(digits.astype(np.float32) / np.float32(255.0)).unsqueeze(1)
    model = mnist_resnet()
    randomize(model, (x - MNIST_MEAN) / MNIST_STD, gen)
    spec = spec_from_module(model, (1, 28, 28), mean=[MNIST_MEAN], std=[MNIST_STD],
                            classes=[str(i) for i in range(10)], name="mnist-resnet-random")
    path = out / "mnist_resnet_random.safetensors"
    export(model, path, spec)
    labels = predict(load(path), x).astype(np.uint8)
    folder = out / "mnist_relabelled"
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "relabelled-images-idx3-ubyte", 2051, digits)
    write_idx(folder / "relabelled-labels-idx1-ubyte", 2049, labels)
    print(f"wrote {path} and {folder} (the {len(digits)} shipped digits, labelled by its "
          f"predictions: {len(set(labels.tolist()))} classes)")


def write_idx(path, magic, array):
    dims = array.shape
    with open(path, "wb") as f:
        f.write(int(magic).to_bytes(4, "big"))
        for d in dims:
            f.write(int(d).to_bytes(4, "big"))
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "bench-fixtures")
    ap.add_argument("--only", default="resnet18,mnist,resnet50",
                    help="comma-separated: resnet18, mnist, resnet50")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only.split(","))
    unknown = wanted - {"resnet18", "mnist", "resnet50"}
    if unknown:
        ap.error(f"unknown fixtures {sorted(unknown)}")
    if "resnet18" in wanted:
        build_rgb(args.out, "resnet18_cifar", resnet18_cifar, 32, 1000, CIFAR_MEAN, CIFAR_STD,
                  CIFAR_CLASSES, args.seed)
    if "mnist" in wanted:
        build_mnist(args.out, args.seed)
    if "resnet50" in wanted:
        build_rgb(args.out, "resnet50_224", resnet50_224, 224, 32, IMAGENET_MEAN, IMAGENET_STD,
                  [f"c{i:03d}" for i in range(1000)], args.seed)


if __name__ == "__main__":
    main()
