#!/usr/bin/env python3
"""Small ONNX fixtures for the ONNX importer's tests, one per graph pattern.

    python examples/onnx_fixtures.py [OUTDIR]      # default tests/fixtures/onnx

Each fixture is a tiny PyTorch model (seeded random weights, BatchNorm with
random running statistics, eval mode) exported with the TorchScript exporter
(``dynamo=False``, opset 13-17, as ``<pattern>.opset<N>.onnx``) and, where it
works, with the dynamo exporter (``dynamo=True``, opset 18, weights embedded,
as ``<pattern>.dynamo.onnx``). Beside each model, ``<file>.ref.safetensors``
holds float32 tensors with the conventions of tests/fixtures/README.md:
``x`` [N,C,H,W] uniform in [0, 1], ``labels`` (the model's own argmax, as
float32), ``logits`` (PyTorch), ``logits_ort`` (onnxruntime on the file),
``grad_ce``, ``grad_logit`` and ``grad_margin`` (PyTorch input gradients).

The bad fixtures (``bad_*.onnx``) are what the importer must refuse with a
message: an unsupported op, a dynamic spatial size, two outputs, a file cut
in half. The script prints a table of files, sizes and the largest
|onnxruntime - PyTorch| logit difference, and fails when one exceeds 1e-4.
Needs torch, onnx, onnxruntime, onnxscript, safetensors, numpy; one CPU thread.
"""

import argparse
import io
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_pytorch import reference_tensors  # noqa: E402

DYNAMO_OPSET = 18
N_INPUTS = 5


# ---------------------------------------------------------------- helpers

def randomize_bn(model):
    """Non-trivial BatchNorm statistics and affine parameters (a fresh
    BatchNorm is the identity up to eps, which would hide a wrong mapping)."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c) * 0.2)
                m.running_var.copy_(torch.rand(c) * 1.5 + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(c) + 0.5)
                    m.bias.copy_(torch.randn(c) * 0.2)
    return model


def bn(c):
    return nn.BatchNorm2d(c)


def conv_bn_relu(cin, cout, k=3, stride=1, groups=1, dilation=1):
    pad = dilation * (k - 1) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
                         bn(cout), nn.ReLU(inplace=True))


# ---------------------------------------------------------------- patterns

class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: conv-bn-relu-conv-bn + shortcut, relu."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = bn(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = bn(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Residual(nn.Module):
    """Stem, an identity-shortcut block, a stride-2 block with a 1×1
    projection shortcut, global average pool, linear."""
    input_shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.stem = conv_bn_relu(3, 8)
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 12, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.norm = bn(cin)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(cin, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        return self.conv(self.relu(self.norm(x)))


class Concat(nn.Module):
    """DenseNet-style: a dense block of three layers (each sees the
    concatenation of all earlier feature maps), a transition (bn-relu-1×1
    conv-avgpool), global pool, linear."""
    input_shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, 1, 1, bias=False)
        self.layers = nn.ModuleList([DenseLayer(6 + 4 * i, 4) for i in range(3)])
        self.transition = nn.Sequential(bn(18), nn.ReLU(), nn.Conv2d(18, 8, 1, bias=False), nn.AvgPool2d(2, 2))
        self.norm = bn(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        features = [self.stem(x)]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        x = self.transition(torch.cat(features, 1))
        x = F.relu(self.norm(x))
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.fc(torch.flatten(x, 1))


class Depthwise(nn.Module):
    """MobileNetV2/V3-style: conv-bn-hardswish stem, an inverted residual
    (1×1 expand, ReLU6, 3×3 depthwise stride 2, ReLU6, 1×1 project), a dilated
    depthwise conv (dilation 2) with hard-sigmoid, global pool, linear."""
    input_shape = (3, 16, 16)

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), bn(8), nn.Hardswish())
        self.expand = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), bn(16), nn.ReLU6(inplace=True))
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1, groups=16, bias=False), bn(16), nn.ReLU6(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(16, 8, 1, bias=False), bn(8))
        self.dilated = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 2, dilation=2, groups=8, bias=True), nn.Hardsigmoid())
        self.head = nn.Sequential(nn.Conv2d(8, 12, 1), nn.Hardswish())
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        x = self.project(self.dw(self.expand(self.stem(x))))
        x = self.head(self.dilated(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SqueezeExcite(nn.Module):
    def __init__(self, c, squeeze):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)

    def forward(self, x):
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(self.avgpool(x)))))
        return x * s


class SeBlock(nn.Module):
    """conv-bn-SiLU, an SE block (adaptive pool, 1×1 conv, ReLU, 1×1 conv,
    sigmoid, broadcasting multiply), then the head pools with
    ``x.mean((2, 3))`` (ReduceMean over H and W) and a linear layer."""
    input_shape = (3, 12, 12)

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), bn(8), nn.SiLU())
        self.se = SqueezeExcite(8, 4)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.se(self.features(x)).mean((2, 3)))


class GemmHead(nn.Module):
    """conv-relu-maxpool, flatten, Linear, ReLU, Dropout, Linear (Gemm)."""
    input_shape = (1, 12, 12)

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 16), nn.ReLU(),
                                        nn.Dropout(0.2), nn.Linear(16, 5))

    def forward(self, x):
        return self.classifier(self.features(x))


class MatMulHead(nn.Module):
    """conv-tanh-avgpool, flatten, then ``x @ W + b`` with explicit
    parameters (MatMul then Add, not Gemm), a LeakyReLU, and a second one."""
    input_shape = (1, 12, 12)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, 1, 1)
        self.w1 = nn.Parameter(torch.randn(3 * 6 * 6, 10) * 0.2)
        self.b1 = nn.Parameter(torch.randn(10) * 0.1)
        self.w2 = nn.Parameter(torch.randn(10, 4) * 1.5)
        self.b2 = nn.Parameter(torch.randn(4) * 0.3)

    def forward(self, x):
        x = F.avg_pool2d(torch.tanh(self.conv(x)), 2)
        x = torch.flatten(x, 1)
        x = F.leaky_relu(torch.matmul(x, self.w1) + self.b1, 0.1)
        return torch.matmul(x, self.w2) + self.b2


class Gelu(nn.Module):
    """conv-bn, exact GELU (the Erf pattern before opset 20, the Gelu op at
    20), conv, exact GELU, global pool, linear."""
    input_shape = (3, 12, 12)
    approximate = "none"

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, 1, 1, bias=False)
        self.bn1 = bn(6)
        self.act1 = nn.GELU(approximate=self.approximate)
        self.conv2 = nn.Conv2d(6, 6, 3, 2, 1)
        self.act2 = nn.GELU(approximate=self.approximate)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = self.act2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class GeluTanh(Gelu):
    """The same with the tanh approximation (Mul/Pow/Tanh before opset 20,
    Gelu with approximate="tanh" at 20): beyond the issue's list."""
    approximate = "tanh"


class Normalize(nn.Module):
    """Input normalization inside forward, ``(x - mean) / std`` with
    constant [1, 3, 1, 1] buffers (Sub and Div by initializers), then
    conv-bn-relu, global pool, linear."""
    input_shape = (3, 12, 12)

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.features = conv_bn_relu(3, 6)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = (x - self.mean) / self.std
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class Pool(nn.Module):
    """conv-relu; max pool k3 s2 p1 ceil_mode (12 → 7, floor would give 6);
    average pool k2 s2 ceil_mode (7 → 4, floor 3: the last window holds one
    row/column and divides by 1); average pool k3 s1 p1
    count_include_pad=False (4 → 4); flatten, linear."""
    input_shape = (2, 12, 12)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, 1, 1)
        self.maxpool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
        self.avgpool1 = nn.AvgPool2d(2, 2, 0, ceil_mode=True)
        self.avgpool2 = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.fc = nn.Linear(4 * 4 * 4, 4)

    def forward(self, x):
        x = self.avgpool2(self.avgpool1(self.maxpool(F.relu(self.conv(x)))))
        return self.fc(torch.flatten(x, 1))


class ViewFlatten(nn.Module):
    """conv-bn-relu-maxpool, then ``x.view(x.size(0), -1)`` (the
    Shape/Gather/Unsqueeze/Concat/Reshape chain), linear."""
    input_shape = (3, 8, 8)

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(conv_bn_relu(3, 4), nn.MaxPool2d(2))
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        x = self.features(x)
        return self.fc(x.view(x.size(0), -1))


class SqueezeHead(nn.Module):
    """conv-relu, adaptive average pool to 1×1, ``.squeeze(3).squeeze(2)``
    (two ``Squeeze`` nodes, axes as an input from opset 13) to [N, C],
    linear."""
    input_shape = (3, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, 1, 1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1)
        return self.fc(x.squeeze(3).squeeze(2))


class Softmax(nn.Module):
    """conv-relu, global pool, linear, softmax: the output is probabilities."""
    input_shape = (1, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, 1, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1)
        return F.softmax(self.fc(torch.flatten(x, 1)) * 3.0, dim=1)


class Pad(nn.Module):
    """``F.pad`` asymmetric zero padding (left 1, right 2, top 0, bottom 1)
    before an unpadded conv, then relu, flatten, linear."""
    input_shape = (2, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.fc = nn.Linear(3 * 7 * 9, 4)

    def forward(self, x):
        x = F.pad(x, (1, 2, 0, 1))
        return self.fc(torch.flatten(F.relu(self.conv(x)), 1))


# name, class, TorchScript opsets: several opsets where the export differs
# (HardSwish is an op from 14, ReduceMean's axes move to an input in 18, Gelu
# is an op in 20).
PATTERNS = [
    ("residual", Residual, [17]),
    ("concat", Concat, [13]),
    ("depthwise", Depthwise, [13, 17]),
    ("se_block", SeBlock, [13, 17]),
    ("gemm_head", GemmHead, [15]),
    ("matmul_head", MatMulHead, [16]),
    ("gelu", Gelu, [17, 20]),
    ("gelu_tanh", GeluTanh, [17, 20]),
    ("normalize", Normalize, [13]),
    ("pool", Pool, [17]),
    ("view_flatten", ViewFlatten, [13]),
    ("squeeze_head", SqueezeHead, [13]),
    ("softmax", Softmax, [17]),
    ("pad", Pad, [13]),
]


def build(cls, seed):
    torch.manual_seed(seed)
    model = randomize_bn(cls()).eval()
    # Scale the last linear layer so the logits spread over a few units:
    # with PyTorch's default init they stay within ±0.5, and near-ties in the
    # argmax would make the labels fragile.
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if linears:
        with torch.no_grad():
            linears[-1].weight.mul_(4.0)
            linears[-1].bias.mul_(4.0)
    return model


def export_torchscript(model, x, path, opset, dynamic_axes=None):
    if dynamic_axes == "static":
        dynamic_axes = None
    elif dynamic_axes is None:
        dynamic_axes = {"input": {0: "N"}, "logits": {0: "N"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes=dynamic_axes, do_constant_folding=True)


def export_dynamo(model, x, path):
    batch = torch.export.Dim("N", min=1, max=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The exporter logs progress on stdout; keep the table readable.
        out = io.StringIO()
        stdout, sys.stdout = sys.stdout, out
        try:
            program = torch.onnx.export(model, (x,), dynamo=True, opset_version=DYNAMO_OPSET,
                                        input_names=["input"], output_names=["logits"],
                                        dynamic_shapes=({0: batch},), external_data=False,
                                        verbose=False)
        finally:
            sys.stdout = stdout
    program.save(str(path), external_data=False)


def ort_run(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if inp.shape[0] == 1:
        # A static batch of one: run the inputs one at a time.
        return torch.cat([torch.from_numpy(sess.run(None, {inp.name: x[i:i + 1].numpy()})[0])
                          for i in range(x.shape[0])])
    return torch.from_numpy(sess.run(None, {inp.name: x.numpy()})[0])


def write_reference(model, path, x):
    with torch.no_grad():
        labels = model(x).argmax(1)
    ref = reference_tensors(model, x, labels)
    ref["logits_ort"] = ort_run(path, x).float().contiguous()
    save_file({k: v.contiguous() for k, v in ref.items()}, str(path) + ".ref.safetensors")
    diff = (ref["logits_ort"] - ref["logits"]).abs().max().item()
    scale = ref["logits"].abs().max().item()
    top2 = ref["logits"].topk(2, dim=1).values
    gap = (top2[:, 0] - top2[:, 1]).min().item()
    return diff, scale, gap


def check_embedded(path):
    """The weights are inside the one file (no external data)."""
    m = onnx.load(str(path), load_external_data=False)
    for t in m.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise SystemExit(f"{path}: initializer {t.name} is external data")
    onnx.checker.check_model(m)
    return m


# ---------------------------------------------------------------- bad inputs

class Upsample(nn.Module):
    """conv, nearest 2× upsampling (Resize), global pool, linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, 1, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.up(self.conv(x)), 1), 1))


class AnySize(nn.Module):
    """conv, global pool, linear: runs at any H and W."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, 1, 1)
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1), 1))


class TwoOutputs(AnySize):
    """Returns the logits and the pooled features."""

    def forward(self, x):
        f = torch.flatten(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1), 1)
        return self.fc(f), f


def write_bad(outdir, rows):
    x = torch.rand(1, 1, 8, 8)
    path = outdir / "bad_unsupported_op.onnx"
    export_torchscript(build(Upsample, 100), x, path, 13)
    check_embedded(path)
    rows.append((path.name, path.stat().st_size, "Resize at opset 13"))

    path = outdir / "bad_dynamic_spatial.onnx"
    export_torchscript(build(AnySize, 101), x, path, 13,
                       dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}, "logits": {0: "N"}})
    check_embedded(path)
    rows.append((path.name, path.stat().st_size, "input [N, 1, H, W]"))

    path = outdir / "bad_two_outputs.onnx"
    model = build(TwoOutputs, 102)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["logits", "features"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}, "features": {0: "N"}})
    check_embedded(path)
    rows.append((path.name, path.stat().st_size, "outputs logits, features"))

    # A valid file (the residual fixture) cut in half.
    whole = (outdir / "residual.opset17.onnx").read_bytes()
    path = outdir / "bad_truncated.onnx"
    path.write_bytes(whole[: len(whole) // 2])
    rows.append((path.name, path.stat().st_size, "first half of residual.opset17.onnx"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", nargs="?", default="tests/fixtures/onnx")
    ap.add_argument("--no-dynamo", action="store_true", help="TorchScript exports only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)

    rows, failures = [], []
    worst = 0.0
    for seed, (name, cls, opsets) in enumerate(PATTERNS):
        model = build(cls, seed)
        torch.manual_seed(1000 + seed)
        x = torch.rand(N_INPUTS, *cls.input_shape)
        targets = [(f"{name}.opset{o}.onnx", o) for o in opsets]
        if not args.no_dynamo:
            targets.append((f"{name}.dynamo.onnx", None))
        if name == "view_flatten":
            # What most users export: a batch of one and no dynamic axes, so
            # the input is [1, 3, 8, 8] and the Reshape's shape is [1, 64].
            targets.append(("view_flatten_batch1.opset13.onnx", "static"))
        for file, opset in targets:
            path = outdir / file
            try:
                if opset is None:
                    export_dynamo(model, x, path)
                elif opset == "static":
                    export_torchscript(model, x[:1], path, 13, dynamic_axes="static")
                else:
                    export_torchscript(model, x, path, opset)
                check_embedded(path)
                diff, scale, gap = write_reference(model, path, x)
            except Exception as e:  # noqa: BLE001 - report and go on
                failures.append((file, f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"))
                for p in (path, Path(str(path) + ".ref.safetensors")):
                    if p.exists():
                        p.unlink()
                continue
            worst = max(worst, diff / max(scale, 1e-12))
            ref_size = Path(str(path) + ".ref.safetensors").stat().st_size
            rows.append((file, path.stat().st_size, f"ref {ref_size:>6} B  max|ort-torch| {diff:.2e}"
                                                     f" max|logit| {scale:.2f}  min top-2 gap {gap:.3f}"))
    write_bad(outdir, rows)

    total = sum(p.stat().st_size for p in outdir.iterdir() if p.is_file())
    print(f"{'file':<34} {'bytes':>7}  notes")
    for file, size, note in rows:
        print(f"{file:<34} {size:>7}  {note}")
    print(f"total {total} bytes in {outdir}")
    for file, why in failures:
        print(f"FAILED {file}: {why}")
    if worst > 1e-4:
        raise SystemExit(f"onnxruntime and PyTorch differ by {worst:.2e} relative")


if __name__ == "__main__":
    main()
