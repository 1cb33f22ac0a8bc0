#!/usr/bin/env python3
"""PyTorch bridge for xai-audit: export models, rebuild them, write references.

xai-audit reads a network as a safetensors file of weights plus an
*architecture spec* (docs/arch-spec.md), a small JSON document stored in the
file's metadata under ``xai_audit.arch``. This script (stdlib + torch +
safetensors + numpy) produces and consumes such files from PyTorch.

Exporting a model
-----------------
::

    import torch
    from export_pytorch import spec_from_module, export

    spec = spec_from_module(model, input_shape=(3, 32, 32),
                            mean=[0.49, 0.48, 0.45], std=[0.25, 0.24, 0.26],  # optional
                            classes=["bird", "cat", "dog", "frog"], name="my-net")
    export(model, "my_net.safetensors", spec)        # dtype=torch.float16 / bfloat16 too

``spec_from_module`` traces ``forward`` with ``torch.fx`` into a version-2 spec,
a graph of named nodes. Each module call becomes a node named by the module's
path (``layer1.0.conv1``) whose ``param`` is that path, so the file holds
``model.state_dict()`` as it is: no renaming, and a state_dict saved by
``safetensors.torch.save_file`` with the spec in its metadata loads the same.
What ``forward`` writes between module calls becomes nodes too, named by the
calling module's path and the op (``layer1.0.relu``, then ``layer1.0.relu_1``;
a module whose forward writes only one such node lends it its own path, so
a block's sum is ``layer1.0`` and a pooling module's mean is its name):

- skip connections and gates: ``x + self.block(x)``, ``out += identity``,
  ``x * self.se(x)`` (equal shapes, or ``[N, C, 1, 1]`` over ``[N, C, H, W]``),
  ``torch.cat([a, b], 1)`` (along channels);
- functional ops: ``F.relu``/``torch.relu``/``x.relu()``, ``F.relu6``,
  ``F.hardtanh``, ``F.leaky_relu``, ``F.gelu``, ``F.silu``, ``F.hardswish``,
  ``F.hardsigmoid``, ``torch.sigmoid``, ``torch.tanh``, ``F.softmax`` over the
  classes, ``F.dropout(x, p, self.training)``, ``F.max_pool2d``,
  ``F.avg_pool2d``, ``F.adaptive_avg_pool2d``, ``x.mean((2, 3))``,
  ``F.pad`` (constant), ``torch.clamp`` with both bounds;
- flattening: ``torch.flatten(x, 1)``, ``x.flatten(1)``,
  ``x.view(x.size(0), -1)``, ``x.reshape(x.shape[0], -1)``,
  ``x.squeeze(-1).squeeze(-1)`` of ``[N, C, 1, 1]``;
- arithmetic with numbers: ``x * 0.5``, ``x - 1``, ``x / 6``, ``-x``, and
  ``a - b`` of tensors.

Modules: nn.Linear, nn.Conv2d (zeros padding; groups, dilation, stride,
``padding="same"`` with odd kernels), nn.BatchNorm1d (on ``[N, F]``) and
nn.BatchNorm2d (with running stats), nn.MaxPool2d, nn.AvgPool2d,
nn.AdaptiveAvgPool2d, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.GELU,
nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Softmax (over the
classes), nn.Flatten, nn.Dropout (identity), nn.Identity (left out), containers
(nn.Sequential, nn.ModuleList, your own modules, however nested), and
GlobalAvgPool2d and Residual below. A module called twice shares its weights.

Anything else -- another torch.nn module (LayerNorm, Upsample, ...), a
parameter read directly in forward (``self.scale * x``), indexing, a forward
that fx cannot trace (Python ``if`` on tensor values), several inputs or
outputs -- raises ``UnsupportedModel`` (a ValueError) naming the first
construct, the module whose forward does it and the source line, e.g.::

    the spec cannot express fx node 'interpolate' (a call to
    torch.nn.functional.interpolate) in module 'decoder' (Decoder) at model.py:42.
    Export the model to ONNX instead, which xai-audit reads directly:
    torch.onnx.export(model, x, "model.onnx"), then xai-audit run model.onnx

``mean``/``std`` describe the normalization your training pipeline applied
*before* the model (torchvision ``Normalize``); xai-audit applies it inside the
network, so attacks and ε work in raw pixel units given by ``input_range``.
``spec_from_module`` runs the model (in eval mode) on random inputs and checks
that the spec rebuilt in PyTorch reproduces its outputs. ``version=1`` writes
the older list of layers instead (module walk: nn.Sequential, Residual,
custom containers calling their children once each in order).

Loading a model back
--------------------
``load(path)`` returns an eval-mode ``nn.Module`` that includes the input
normalization, reading the spec (version 1 or 2) from the metadata, an
``arch=`` dict / JSON file, or a sidecar ``<stem>.arch.json``;
``build_from_spec(spec, weights)`` does the same from a spec and a dict of
tensors. Both rebuild any spec xai-audit reads, including the specs
``xai-audit inspect model.onnx --spec`` prints, so numbers can be
cross-checked in PyTorch.

Command line
------------
::

    python examples/export_pytorch.py reference MODEL.safetensors \\
        --data images-idx3-ubyte.gz [--labels labels-idx1-ubyte.gz] \\
        [--count N] [--arch ARCH.json] --out REF.safetensors
    python examples/export_pytorch.py fixtures OUTDIR
    python examples/export_pytorch.py traced OUTDIR

``reference`` writes float32 tensors ``x`` [N,C,H,W] (the first N images / 255),
``labels`` [N] (from --labels, else the model's predictions), ``logits`` [N,K],
and the input gradients ``grad_ce`` (of cross-entropy, summed over the batch),
``grad_logit`` (of sum_n z[n, y_n]) and ``grad_margin`` (of
sum_n z[n, y_n] - max_{j != y_n} z[n, j]), computed in float32 on the CPU.
``fixtures`` regenerates the Rust test fixtures (tests/fixtures, version-1
specs) deterministically and checks them. ``traced`` exports four models
whose forwards are not plain sequences (a CNN with functional ops, a ResNet
block, a squeeze-and-excitation block, a DenseNet-style block), each with a
reference file of the tensors above on random inputs, for
``cargo run --release --example compare_reference -- OUTDIR/NAME.safetensors
OUTDIR/NAME.ref.safetensors``.
"""

import argparse
import copy
import gzip
import inspect
import json
import math
import operator
import os
import struct
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.fx.passes.shape_prop import ShapeProp

SPEC_VERSION = 2
META_KEY = "xai_audit.arch"

__all__ = [
    "Residual", "GlobalAvgPool2d", "ChannelAffine", "SpecModel", "GraphModel",
    "UnsupportedModel", "spec_from_module", "export", "check_spec", "build_from_spec",
    "load", "read_idx", "reference_tensors",
]


# --------------------------------------------------------------------------
# Modules the spec can express beyond torch.nn
# --------------------------------------------------------------------------

class Residual(nn.Module):
    """``activation(body(x) + shortcut(x))``; no shortcut means identity."""

    def __init__(self, body, shortcut=None, activation=None):
        super().__init__()
        if not isinstance(body, nn.Module):
            body = nn.Sequential(*body)
        if shortcut is not None and not isinstance(shortcut, nn.Module):
            shortcut = nn.Sequential(*shortcut)
        self.body = body
        self.register_module("shortcut", shortcut)
        self.register_module("activation", activation)

    def forward(self, x):
        y = self.body(x) + (x if self.shortcut is None else self.shortcut(x))
        return y if self.activation is None else self.activation(y)


class GlobalAvgPool2d(nn.Module):
    """Mean over H and W: ``[N, C, H, W] -> [N, C]``."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


# --------------------------------------------------------------------------
# Spec vocabulary (docs/arch-spec.md, versions 1 and 2)
# --------------------------------------------------------------------------

_SIZE_KEYS = {"kernel_size", "stride", "padding", "dilation", "output_size"}
_PARAM_OPS = {"linear", "conv2d", "batch_norm1d", "batch_norm2d", "channel_affine"}
# op -> (always-emitted / required keys, {optional key: default}).
# A default of None for a pool's stride means "= kernel_size".
_OPS = {
    "linear": (("in_features", "out_features"), {"bias": True}),
    "conv2d": (("in_channels", "out_channels", "kernel_size"),
               {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}),
    "batch_norm1d": (("num_features",), {"eps": 1e-5, "affine": True}),
    "batch_norm2d": (("num_features",), {"eps": 1e-5, "affine": True}),
    "max_pool2d": (("kernel_size",),
                   {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False}),
    "avg_pool2d": (("kernel_size",),
                   {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True}),
    "adaptive_avg_pool2d": (("output_size",), {}),
    "global_avg_pool2d": ((), {}),
    "relu": ((), {}),
    "leaky_relu": ((), {"negative_slope": 0.01}),
    "gelu": ((), {"approximate": "none"}),
    "silu": ((), {}),
    "tanh": ((), {}),
    "sigmoid": ((), {}),
    "flatten": ((), {"start_dim": 1}),
    "dropout": ((), {"p": 0.5, "active": False}),
    "random_resize_pad": (("min_size",), {"max_size": None, "size": None, "value": 0.0}),
    "residual": (("body",), {"shortcut": None, "activation": None}),
    # Version 2 only.
    "add": ((), {}),
    "mul": ((), {}),
    "concat": ((), {}),
    "clip": (("min", "max"), {}),
    "hard_sigmoid": ((), {"alpha": 1.0 / 6.0, "beta": 0.5}),
    "hard_swish": ((), {}),
    "softmax": ((), {}),
    "affine": ((), {"scale": 1.0, "shift": 0.0}),
    "channel_affine": (("num_features",), {"bias": True}),
    "pad2d": (("padding",), {"value": 0.0}),
}
_V2_ONLY = {"add", "mul", "concat", "clip", "hard_sigmoid", "hard_swish", "softmax", "affine",
            "channel_affine", "pad2d"}
_V1_OPS = set(_OPS) - _V2_ONLY
_V2_OPS = set(_OPS) - {"residual"}
_ARITY = {"add": (2, 2), "mul": (2, 2), "concat": (2, float("inf"))}
_TOP_KEYS_V1 = ("version", "name", "input", "classes", "layers", "strip_prefix")
_TOP_KEYS_V2 = ("version", "name", "input", "classes", "nodes", "strip_prefix")
_INPUT_KEYS = ("shape", "range", "mean", "std")


def _pair(v, what="size"):
    """int / [h, w] / (h, w) -> (h, w) of ints."""
    if isinstance(v, bool):
        raise ValueError(f"{what}: expected an int or [h, w], got {v!r}")
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(
            isinstance(a, int) and not isinstance(a, bool) for a in v):
        return (int(v[0]), int(v[1]))
    if isinstance(v, (list, tuple)) and len(v) == 1 and isinstance(v[0], int):
        return (int(v[0]), int(v[0]))
    raise ValueError(f"{what}: expected an int or [h, w], got {v!r}")


def _size(v, what="size"):
    """Canonical spec form: an int when h == w, else [h, w]."""
    h, w = _pair(v, what)
    return h if h == w else [h, w]


def _join(path, name):
    return f"{path}.{name}" if path else name


# --------------------------------------------------------------------------
# nn.Module -> spec: the parts both versions share
# --------------------------------------------------------------------------

def _prune(op, full):
    """Drop optional keys equal to their default (sizes compared as pairs)."""
    required, defaults = _OPS[op]
    out = {}
    for key, value in full.items():
        if key in ("op", "param") or key in required:
            out[key] = value
            continue
        default = defaults[key]
        if key == "stride" and default is None:       # pools: stride = kernel
            default = full["kernel_size"]
        if key in _SIZE_KEYS:
            if _pair(value, key) == _pair(default, key):
                continue
        elif value == default and type(value) is type(default):
            continue
        out[key] = value
    return out


def _conv_padding(m, path):
    pad = m.padding
    if isinstance(pad, str):
        if pad == "valid":
            return 0
        if pad == "same":
            hw = []
            for k, d in zip(m.kernel_size, m.dilation):
                total = d * (k - 1)
                if total % 2:
                    raise ValueError(
                        f"module '{path}' ({type(m).__name__}): padding='same' with an even "
                        f"kernel pads asymmetrically, which the spec cannot express")
                hw.append(total // 2)
            return _size(hw)
        raise ValueError(f"module '{path}' ({type(m).__name__}): padding={pad!r} is not supported")
    return _size(pad, "padding")


def _leaf_layer(m, path):
    """One supported leaf module -> a spec layer dict (or None to skip)."""
    t = type(m).__name__
    where = f"module '{path or '<root>'}' ({t})"

    def need_param():
        if not path:
            raise ValueError(
                f"{where} has weights but no state_dict prefix; wrap it in nn.Sequential")
        return path

    if isinstance(m, nn.Linear):
        return _prune("linear", {"op": "linear", "param": need_param(),
                                 "in_features": m.in_features, "out_features": m.out_features,
                                 "bias": m.bias is not None})
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros":
            raise ValueError(f"{where}: padding_mode={m.padding_mode!r} is not supported "
                             f"(only 'zeros')")
        if any(m.output_padding):
            raise ValueError(f"{where}: output_padding is not supported")
        return _prune("conv2d", {
            "op": "conv2d", "param": need_param(),
            "in_channels": m.in_channels, "out_channels": m.out_channels,
            "kernel_size": _size(m.kernel_size, "kernel_size"), "stride": _size(m.stride, "stride"),
            "padding": _conv_padding(m, path), "dilation": _size(m.dilation, "dilation"),
            "groups": m.groups, "bias": m.bias is not None})
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if not m.track_running_stats or m.running_mean is None:
            raise ValueError(f"{where}: track_running_stats must be True (the audit runs "
                             f"in eval mode on running statistics)")
        op = "batch_norm1d" if isinstance(m, nn.BatchNorm1d) else "batch_norm2d"
        return _prune(op, {"op": op, "param": need_param(), "num_features": m.num_features,
                           "eps": float(m.eps), "affine": bool(m.affine)})
    if isinstance(m, nn.MaxPool2d):
        if m.return_indices:
            raise ValueError(f"{where}: return_indices=True is not supported")
        k = _size(m.kernel_size, "kernel_size")
        return _prune("max_pool2d", {
            "op": "max_pool2d", "kernel_size": k,
            "stride": k if m.stride is None else _size(m.stride, "stride"),
            "padding": _size(m.padding, "padding"), "dilation": _size(m.dilation, "dilation"),
            "ceil_mode": bool(m.ceil_mode)})
    if isinstance(m, nn.AvgPool2d):
        if m.divisor_override is not None:
            raise ValueError(f"{where}: divisor_override is not supported")
        k = _size(m.kernel_size, "kernel_size")
        return _prune("avg_pool2d", {
            "op": "avg_pool2d", "kernel_size": k,
            "stride": k if m.stride is None else _size(m.stride, "stride"),
            "padding": _size(m.padding, "padding"), "ceil_mode": bool(m.ceil_mode),
            "count_include_pad": bool(m.count_include_pad)})
    if isinstance(m, nn.AdaptiveAvgPool2d):
        size = m.output_size
        if isinstance(size, (list, tuple)) and any(s is None for s in size):
            raise ValueError(f"{where}: output_size with None is not supported; give the size")
        return {"op": "adaptive_avg_pool2d", "output_size": _size(size, "output_size")}
    if isinstance(m, GlobalAvgPool2d):
        return {"op": "global_avg_pool2d"}
    if isinstance(m, nn.LeakyReLU):
        return _prune("leaky_relu", {"op": "leaky_relu", "negative_slope": float(m.negative_slope)})
    if isinstance(m, nn.ReLU):
        return {"op": "relu"}
    if isinstance(m, nn.GELU):
        if m.approximate not in ("none", "tanh"):
            raise ValueError(f"{where}: approximate={m.approximate!r} is not supported")
        return _prune("gelu", {"op": "gelu", "approximate": m.approximate})
    if isinstance(m, nn.SiLU):
        return {"op": "silu"}
    if isinstance(m, nn.Tanh):
        return {"op": "tanh"}
    if isinstance(m, nn.Sigmoid):
        return {"op": "sigmoid"}
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise ValueError(f"{where}: only start_dim=1, end_dim=-1 is supported "
                             f"(got {m.start_dim}, {m.end_dim})")
        return {"op": "flatten"}
    if isinstance(m, nn.Dropout):
        return _prune("dropout", {"op": "dropout", "p": float(m.p)})
    if isinstance(m, nn.Identity):
        return None
    return NotImplemented


# --------------------------------------------------------------------------
# nn.Module -> spec version 2, by tracing forward() with torch.fx
# --------------------------------------------------------------------------

ONNX_ROUTE = ('export the model to ONNX instead, which xai-audit reads directly: '
              'torch.onnx.export(model, x, "model.onnx"), then xai-audit run model.onnx')


class UnsupportedModel(ValueError):
    """``forward`` does something the spec cannot express.

    ``construct`` describes it (``a call to torch.nn.functional.interpolate``),
    ``module`` is the path of the module whose ``forward`` does it (``""`` for
    the root), ``node`` the torch.fx node (``None`` when tracing itself
    failed) and ``source`` the ``file:line`` of the call when known. The
    message names all of them and the ONNX route.
    """

    def __init__(self, construct, module, module_type, node=None, source=None, detail=None):
        self.construct, self.module, self.node, self.source = construct, module, node, source
        where = f"in module '{module or '<root>'}' ({module_type})"
        if source:
            where += f" at {source}"
        what = f"fx node '{node}' ({construct})" if node else construct
        text = f"the spec cannot express {what} {where}"
        if detail:
            text += f": {detail}"
        super().__init__(f"{text}. {ONNX_ROUTE[0].upper()}{ONNX_ROUTE[1:]}")


def _user_frame(lines):
    """``file:line`` of the innermost frame of a formatted stack that is the
    model's code: not in torch, not this script's tracer."""
    found = None
    for line in lines:
        line = line.strip()
        if not line.startswith('File "'):
            continue
        path, _, rest = line[len('File "'):].partition('"')
        path = os.path.abspath(path)
        func = rest.rsplit(" in ", 1)[-1].strip()
        if path.startswith(_TORCH_DIR + os.sep) or \
                (path == os.path.abspath(__file__) and func in _TRACER_FUNCS):
            continue
        lineno = rest.split("line", 1)[-1].split(",", 1)[0].strip()
        found = f"{path}:{lineno}"
    return found


_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_TRACER_FUNCS = {"call_module", "_trace_nodes", "spec_from_module"}


class _Tracer(fx.Tracer):
    """The default tracer (torch.nn modules are leaves, the rest is traced
    through), recording user stack traces and, on a failure, the innermost
    module being traced."""

    def __init__(self):
        super().__init__()
        self.record_stack_traces = True

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as e:
            if not hasattr(e, "_xai_module"):
                try:
                    path = self.path_of_module(m)
                except NameError:
                    path = "?"
                e._xai_module = (path, type(m).__name__)
            raise


# Functions and methods by canonical name: (argument names, defaults).
_SIGS = {
    "relu": (("input", "inplace"), {"inplace": False}),
    "relu6": (("input", "inplace"), {"inplace": False}),
    "hardtanh": (("input", "min_val", "max_val", "inplace"),
                 {"min_val": -1.0, "max_val": 1.0, "inplace": False}),
    "leaky_relu": (("input", "negative_slope", "inplace"),
                   {"negative_slope": 0.01, "inplace": False}),
    "gelu": (("input", "approximate"), {"approximate": "none"}),
    "silu": (("input", "inplace"), {"inplace": False}),
    "hardswish": (("input", "inplace"), {"inplace": False}),
    "hardsigmoid": (("input", "inplace"), {"inplace": False}),
    "sigmoid": (("input",), {}),
    "tanh": (("input",), {}),
    "softmax": (("input", "dim", "_stacklevel", "dtype"),
                {"dim": None, "_stacklevel": 3, "dtype": None}),
    "dropout": (("input", "p", "training", "inplace"),
                {"p": 0.5, "training": True, "inplace": False}),
    "avg_pool2d": (("input", "kernel_size", "stride", "padding", "ceil_mode",
                    "count_include_pad", "divisor_override"),
                   {"stride": None, "padding": 0, "ceil_mode": False,
                    "count_include_pad": True, "divisor_override": None}),
    "max_pool2d": (("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                    "return_indices"),
                   {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False,
                    "return_indices": False}),
    "adaptive_avg_pool2d": (("input", "output_size"), {}),
    "flatten": (("input", "start_dim", "end_dim"), {"start_dim": 0, "end_dim": -1}),
    "cat": (("tensors", "dim"), {"dim": 0}),
    "add": (("input", "other", "alpha"), {"alpha": 1}),
    "sub": (("input", "other", "alpha"), {"alpha": 1}),
    "mul": (("input", "other"), {}),
    "div": (("input", "other", "rounding_mode"), {"rounding_mode": None}),
    "neg": (("input",), {}),
    "mean": (("input", "dim", "keepdim", "dtype"), {"dim": None, "keepdim": False, "dtype": None}),
    "clamp": (("input", "min", "max"), {"min": None, "max": None}),
    "pad": (("input", "pad", "mode", "value"), {"mode": "constant", "value": None}),
    "squeeze": (("input", "dim"), {"dim": None}),
    "size": (("input", "dim"), {"dim": None}),
    "contiguous": (("input", "memory_format"), {"memory_format": None}),
    "clone": (("input", "memory_format"), {"memory_format": None}),
    "stochastic_depth": (("input", "p", "mode", "training"), {"training": True}),
}

_FUNCS = {
    F.relu: "relu", torch.relu: "relu", F.relu6: "relu6", F.hardtanh: "hardtanh",
    F.leaky_relu: "leaky_relu", F.gelu: "gelu", F.silu: "silu", F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid", torch.sigmoid: "sigmoid", torch.tanh: "tanh",
    F.softmax: "softmax", torch.softmax: "softmax", F.dropout: "dropout",
    F.avg_pool2d: "avg_pool2d", F.max_pool2d: "max_pool2d",
    F.adaptive_avg_pool2d: "adaptive_avg_pool2d", torch.flatten: "flatten",
    torch.cat: "cat", torch.concat: "cat", torch.add: "add", torch.sub: "sub",
    torch.mul: "mul", torch.div: "div", torch.neg: "neg", torch.mean: "mean",
    torch.clamp: "clamp", torch.clip: "clamp", F.pad: "pad", torch.squeeze: "squeeze",
    operator.add: "add", operator.iadd: "add", operator.sub: "sub", operator.isub: "sub",
    operator.mul: "mul", operator.imul: "mul", operator.truediv: "div",
    operator.itruediv: "div", operator.neg: "neg",
}

# Functions of other libraries, by (module, name).
_NAMED_FUNCS = {("torchvision.ops.stochastic_depth", "stochastic_depth"): "stochastic_depth"}

# Tensor methods that are the function of the same name (an in-place `relu_`
# is `relu`); `view`/`reshape`, `size` and `getitem` are handled apart.
_METHODS = {name: name for name in _SIGS if name not in ("cat", "pad", "stochastic_depth")}
_METHODS.update({"clip": "clamp", "concat": "cat"})


def _leaf_layer_v2(m, path, in_shape):
    """One torch.nn module called in forward -> a spec node dict (without
    name/inputs), None for the identity, a string saying why not, or
    NotImplemented for a module type the spec has no op for."""
    if isinstance(m, nn.ReLU6):
        return {"op": "clip", "min": 0.0, "max": 6.0}
    if isinstance(m, nn.Hardtanh):
        return {"op": "clip", "min": float(m.min_val), "max": float(m.max_val)}
    if isinstance(m, nn.Hardswish):
        return {"op": "hard_swish"}
    if isinstance(m, nn.Hardsigmoid):
        return {"op": "hard_sigmoid"}
    if isinstance(m, nn.Softmax):
        if len(in_shape) != 2 or m.dim not in (1, -1):
            return (f"softmax over dim {m.dim} of a {len(in_shape)}-d tensor (only over the "
                    f"classes of [N, K])")
        return {"op": "softmax"}
    if isinstance(m, nn.modules.dropout._DropoutNd):
        return {"op": "dropout", "p": float(m.p)}
    if isinstance(m, nn.BatchNorm1d) and len(in_shape) != 2:
        return f"BatchNorm1d on a {len(in_shape)}-d input (the spec's batch_norm1d takes [N, F])"
    if isinstance(m, nn.Flatten):
        if _norm_dim(m.start_dim, len(in_shape)) != 1 or \
                _norm_dim(m.end_dim, len(in_shape)) != len(in_shape) - 1:
            return (f"Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) (only from dim 1 "
                    f"to the end)")
        return {"op": "flatten"}
    try:
        layer = _leaf_layer(m, path)
    except ValueError as e:
        return str(e)
    return layer


def _is_default_check(node):
    """fx's check that an argument traced at its default keeps it."""
    return node.op == "call_function" and getattr(node.target, "__name__", "") == "_assert_is_none"


def _norm_dim(d, ndim):
    return d + ndim if isinstance(d, int) and d < 0 else d


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _FxConverter:
    """Walks a traced graph and writes spec nodes (dicts with ``inputs``)."""

    def __init__(self, root, graph):
        self.root = root
        self.graph = graph
        self.modules = dict(root.named_modules())
        # fx node -> ("t", spec name) | ("part", spec name of a [N, C, 1, 1] squeezed
        # to [N, C, 1]) | ("size", fx node, dim) | ("sizes", fx node)
        self.values = {}
        self.nodes = []           # spec nodes, each with "inputs"
        self.reserved = {n.target for n in graph.nodes if n.op == "call_module"}
        self.used = {"input"}

    # -- naming and errors ------------------------------------------------

    def _unique(self, base, own=False):
        """``base``, or ``base_1``, ... when taken; a module's path is kept
        for its own (first) call (``own``)."""
        name, i = base, 0
        while name in self.used or (name in self.reserved and not (own and name == base)):
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def _scope(self, node):
        """(module path, type name) of the module whose forward made ``node``
        (for a module call, the module that called it)."""
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        if node.op == "call_module" and stack:
            stack = stack[:-1]
        if stack:
            path, typ = stack[-1]
            return path, getattr(typ, "__name__", str(typ).rsplit(".", 1)[-1])
        return "", type(self.root).__name__

    def fail(self, node, construct, detail=None):
        path, typ = self._scope(node)
        lines = (node.stack_trace or "").splitlines()
        raise UnsupportedModel(construct, path, typ, node=node.name,
                               source=_user_frame(lines),
                               detail=detail)

    # -- values -----------------------------------------------------------

    def shape(self, node):
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def tensor(self, node, arg, what="input"):
        """The spec name of a tensor argument."""
        kind = self.values.get(arg, (None,))[0] if isinstance(arg, fx.Node) else None
        if kind == "t":
            return self.values[arg][1]
        if kind == "part":
            self.fail(node, self.describe(node), f"its {what} is squeezed to [N, C, 1]; only a "
                                                 f"flatten to [N, C] may follow")
        self.fail(node, self.describe(node), f"its {what} is not a tensor computed by the "
                                             f"network ({arg!r})")

    def is_tensor(self, arg):
        return isinstance(arg, fx.Node) and self.values.get(arg, (None,))[0] == "t"

    def emit(self, node, layer, inputs, base=None):
        """Appends a spec node for ``layer`` reading ``inputs``; returns its name."""
        if base is None:
            path, _ = self._scope(node)
            base = _join(path, layer["op"]) if node.op != "call_module" else node.target
        name = self._unique(base, own=node.op == "call_module" and base == node.target)
        spec_node = {"name": name, "op": layer["op"], "inputs": list(inputs)}
        spec_node.update({k: v for k, v in layer.items() if k != "op"})
        if node.op != "call_module":
            spec_node["_scope"] = self._scope(node)[0]
        self.nodes.append(spec_node)
        return name

    @staticmethod
    def describe(node):
        if node.op == "call_module":
            return f"a call of module '{node.target}'"
        if node.op == "call_method":
            return f"the tensor method .{node.target}()"
        if node.op == "get_attr":
            return f"the tensor self.{node.target} read directly in forward"
        target = node.target
        mod = getattr(target, "__module__", None) or ""
        name = getattr(target, "__name__", str(target))
        if mod in ("_operator", "operator"):
            return f"the operator {name}"
        if mod.startswith("torch") or mod == "":
            owner = {"torch._C._nn": "torch.nn.functional", "torch._C._VariableFunctions": "torch",
                     "": "torch"}.get(mod, mod)
            return f"a call to {owner}.{name}"
        return f"a call to {mod}.{name}"

    # -- the walk -----------------------------------------------------------

    def run(self):
        output = None
        for node in self.graph.nodes:
            if node.op == "placeholder":
                if any(v[0] == "t" and v[1] == "input" for v in self.values.values()):
                    if all(_is_default_check(u) for u in node.users):
                        continue                   # an optional argument left at its default
                    self.fail(node, f"a second input '{node.target}' of forward",
                              "the network takes one image batch")
                self.values[node] = ("t", "input")
            elif node.op == "get_attr":
                self.fail(node, self.describe(node),
                          "parameters and buffers must belong to a supported module "
                          "(an input normalization goes in mean=/std= instead)")
            elif node.op == "call_module":
                self.call_module(node)
            elif node.op in ("call_function", "call_method"):
                if not _is_default_check(node):
                    self.call(node)
            elif node.op == "output":
                output = node
        res = output.args[0]
        if not self.is_tensor(res):
            kind = type(res).__name__
            self.fail(output, f"a forward that returns a {kind}",
                      "the network must return one tensor of logits [N, K]")
        out_name = self.values[res][1]
        if out_name == "input":
            self.fail(output, "a forward that returns its input unchanged")
        return self.finish(out_name)

    def finish(self, out_name):
        """Drops nodes the output does not depend on; leaves out ``inputs``
        where a node reads the one listed just before it."""
        by_name = {n["name"]: n for n in self.nodes}
        live, stack = set(), [out_name]
        while stack:
            name = stack.pop()
            if name in live or name == "input":
                continue
            live.add(name)
            stack.extend(by_name[name]["inputs"])
        kept = [n for n in self.nodes if n["name"] in live]
        # A module whose forward is one functional op (GlobalAvgPool2d, a
        # block's sum) names its node.
        scopes = {}
        for n in kept:
            scope = n.pop("_scope", None)
            if scope:
                scopes.setdefault(scope, []).append(n)
        taken = {n["name"] for n in kept} | self.reserved
        renamed = {}
        for scope, group in scopes.items():
            if len(group) == 1 and scope not in taken:
                renamed[group[0]["name"]] = scope
                group[0]["name"] = scope
        for n in kept:
            n["inputs"] = [renamed.get(i, i) for i in n["inputs"]]
        prev = "input"
        for n in kept:
            if n["inputs"] == [prev]:
                del n["inputs"]
            prev = n["name"]
        return kept

    def call_module(self, node):
        m = self.modules[node.target]
        if len(node.args) != 1 or node.kwargs:
            self.fail(node, self.describe(node), "a module called with more than one argument")
        src = node.args[0]
        name = self.tensor(node, src)
        layer = _leaf_layer_v2(m, node.target, self.shape(src) or ())
        if layer is NotImplemented:
            self.fail(node, f"a {type(m).__name__} module")
        if isinstance(layer, str):
            self.fail(node, f"a {type(m).__name__} module", layer)
        if layer is None:                                  # nn.Identity
            self.values[node] = ("t", name)
            return
        self.values[node] = ("t", self.emit(node, layer, [name]))

    def bind(self, node, key):
        names, defaults = _SIGS[key]
        args = list(node.args)
        if len(args) > len(names):
            self.fail(node, self.describe(node), f"{len(args)} positional arguments")
        vals = dict(defaults)
        vals.update(zip(names, args))
        for k, v in node.kwargs.items():
            if k not in names:
                self.fail(node, self.describe(node), f"the argument {k}={v!r}")
            vals[k] = v
        missing = [n for n in names if n not in vals]
        if missing:
            self.fail(node, self.describe(node), f"missing argument {missing[0]}")
        return vals

    def call(self, node):
        t = node.target
        if node.op == "call_method":
            if t in ("view", "reshape"):
                return self.reshape(node, node.args[0], node.args[1:])
            key = _METHODS.get(t[:-1] if t.endswith("_") and t[:-1] in _METHODS else t)
        else:
            if t is getattr and len(node.args) == 2 and node.args[1] == "shape":
                self.values[node] = ("sizes", node.args[0])
                return
            if t is operator.getitem:
                return self.getitem(node)
            if t is torch.reshape:
                return self.reshape(node, node.args[0], node.args[1:])
            key = _FUNCS.get(t) or _NAMED_FUNCS.get(
                (getattr(t, "__module__", None), getattr(t, "__name__", None)))
        if key is None:
            self.fail(node, self.describe(node))
        a = self.bind(node, key)
        handler = getattr(self, "op_" + key, None)
        if handler is not None:
            return handler(node, a)
        # One-input activations with no arguments that matter.
        layer = {"relu": {"op": "relu"}, "silu": {"op": "silu"}, "sigmoid": {"op": "sigmoid"},
                 "tanh": {"op": "tanh"}, "hardswish": {"op": "hard_swish"},
                 "hardsigmoid": {"op": "hard_sigmoid"},
                 "relu6": {"op": "clip", "min": 0.0, "max": 6.0}}[key]
        self.unary(node, a, layer)

    def unary(self, node, a, layer):
        src = self.tensor(node, a["input"])
        self.values[node] = ("t", self.emit(node, layer, [src]))

    def alias(self, node, a):
        self.values[node] = ("t", self.tensor(node, a["input"]))

    op_contiguous = alias
    op_clone = alias

    def op_hardtanh(self, node, a):
        self.unary(node, a, {"op": "clip", "min": float(a["min_val"]), "max": float(a["max_val"])})

    def op_leaky_relu(self, node, a):
        self.unary(node, a, _prune("leaky_relu", {"op": "leaky_relu",
                                                  "negative_slope": float(a["negative_slope"])}))

    def op_gelu(self, node, a):
        if a["approximate"] not in ("none", "tanh"):
            self.fail(node, self.describe(node), f"approximate={a['approximate']!r}")
        self.unary(node, a, _prune("gelu", {"op": "gelu", "approximate": a["approximate"]}))

    def op_stochastic_depth(self, node, a):
        if a["training"]:
            self.fail(node, self.describe(node), "training=True drops rows in eval mode")
        self.alias(node, a)

    def op_softmax(self, node, a):
        shape = self.shape(a["input"]) or ()
        if len(shape) != 2 or _norm_dim(a["dim"], 2) != 1:
            self.fail(node, self.describe(node),
                      f"softmax over dim {a['dim']} of a {len(shape)}-d tensor "
                      f"(only over the classes of [N, K])")
        self.unary(node, a, {"op": "softmax"})

    def op_dropout(self, node, a):
        # training=True keeps dropout on in eval mode: Monte-Carlo dropout,
        # audited as a randomized model (attack it with eot_samples).
        layer = {"op": "dropout", "p": float(a["p"])}
        if a["training"]:
            layer["active"] = True
        self.unary(node, a, _prune("dropout", layer))

    def op_avg_pool2d(self, node, a):
        if a["divisor_override"] is not None:
            self.fail(node, self.describe(node), "divisor_override")
        k = _size(a["kernel_size"], "kernel_size")
        self.unary(node, a, _prune("avg_pool2d", {
            "op": "avg_pool2d", "kernel_size": k,
            "stride": k if a["stride"] in (None, [], ()) else _size(a["stride"], "stride"),
            "padding": _size(a["padding"], "padding"), "ceil_mode": bool(a["ceil_mode"]),
            "count_include_pad": bool(a["count_include_pad"])}))

    def op_max_pool2d(self, node, a):
        if a["return_indices"]:
            self.fail(node, self.describe(node), "return_indices=True")
        k = _size(a["kernel_size"], "kernel_size")
        self.unary(node, a, _prune("max_pool2d", {
            "op": "max_pool2d", "kernel_size": k,
            "stride": k if a["stride"] in (None, [], ()) else _size(a["stride"], "stride"),
            "padding": _size(a["padding"], "padding"), "dilation": _size(a["dilation"], "dilation"),
            "ceil_mode": bool(a["ceil_mode"])}))

    def op_adaptive_avg_pool2d(self, node, a):
        size = a["output_size"]
        if isinstance(size, (list, tuple)) and any(s is None for s in size):
            self.fail(node, self.describe(node), "an output_size with None")
        self.unary(node, a, {"op": "adaptive_avg_pool2d",
                             "output_size": _size(size, "output_size")})

    def op_flatten(self, node, a):
        shape = self.shape(a["input"]) or ()
        n = len(shape)
        if _norm_dim(a["start_dim"], n) != 1 or _norm_dim(a["end_dim"], n) != n - 1:
            self.fail(node, self.describe(node),
                      f"flatten(start_dim={a['start_dim']}, end_dim={a['end_dim']}) of a {n}-d "
                      f"tensor (only from dim 1 to the end; torch.flatten's default start_dim=0 "
                      f"flattens the batch too)")
        self.values[node] = ("t", self.emit(node, {"op": "flatten"},
                                            [self.flat_source(node, a["input"])]))

    def op_mean(self, node, a):
        shape = self.shape(a["input"]) or ()
        dims = a["dim"] if isinstance(a["dim"], (list, tuple)) else [a["dim"]]
        if len(shape) != 4 or sorted(_norm_dim(d, 4) for d in dims if d is not None) != [2, 3] \
                or a["dtype"] is not None:
            self.fail(node, self.describe(node),
                      f"a mean over dims {a['dim']} of a {len(shape)}-d tensor "
                      f"(only over height and width)")
        layer = ({"op": "adaptive_avg_pool2d", "output_size": 1} if a["keepdim"]
                 else {"op": "global_avg_pool2d"})
        self.unary(node, a, layer)

    def op_clamp(self, node, a):
        lo, hi = a["min"], a["max"]
        if any(isinstance(v, fx.Node) for v in (lo, hi)):
            self.fail(node, self.describe(node), "tensor bounds")
        if lo is not None and hi is not None:
            layer = {"op": "clip", "min": float(lo), "max": float(hi)}
        elif lo == 0 and hi is None:
            layer = {"op": "relu"}
        else:
            self.fail(node, self.describe(node), f"one-sided bounds min={lo}, max={hi} "
                                                 f"(clip needs both, or min=0 alone for a ReLU)")
        self.unary(node, a, layer)

    def op_pad(self, node, a):
        pad, value = list(a["pad"]), a["value"]
        if a["mode"] != "constant" or len(pad) not in (2, 4) or \
                not all(isinstance(p, int) and p >= 0 for p in pad) or \
                len(self.shape(a["input"]) or ()) != 4:
            self.fail(node, self.describe(node),
                      f"padding {pad} in mode {a['mode']!r} (only constant, non-negative, "
                      f"of height and width)")
        left, right = pad[0], pad[1]
        top, bottom = (pad[2], pad[3]) if len(pad) == 4 else (0, 0)
        layer = {"op": "pad2d", "padding": [top, bottom, left, right]}
        if value:
            layer["value"] = float(value)
        self.unary(node, a, layer)

    def op_squeeze(self, node, a):
        shape, out = self.shape(a["input"]) or (), self.shape(node) or ()
        dims = a["dim"]
        if dims is None:
            self.fail(node, self.describe(node), "squeeze() without dims would also squeeze a "
                                                 "batch of one; name the dims")
        dims = {_norm_dim(d, len(shape)) for d in (dims if isinstance(dims, (list, tuple))
                                                   else [dims])}
        if shape and 0 not in dims and out == (shape[0], math.prod(shape[1:])):
            self.values[node] = ("t", self.emit(node, {"op": "flatten"},
                                                [self.flat_source(node, a["input"])]))
            return
        if len(shape) == 4 and 0 not in dims and len(out) == 3 and shape[2:].count(1) == 2:
            # [N, C, 1, 1] -> [N, C, 1]: the second squeeze makes the flatten.
            self.values[node] = ("part", self.flat_source(node, a["input"]))
            return
        self.fail(node, self.describe(node),
                  f"squeeze of dims {sorted(dims)} of a tensor of shape {list(shape)} (only "
                  f"[N, C, 1, 1] to [N, C])")

    def flat_source(self, node, arg):
        """The spec tensor a flatten of ``arg`` reads: ``arg``'s, or for a
        partly squeezed ``[N, C, 1]`` the ``[N, C, 1, 1]`` it came from."""
        v = self.values.get(arg) if isinstance(arg, fx.Node) else None
        if v is not None and v[0] == "part":
            return v[1]
        return self.tensor(node, arg)

    def op_size(self, node, a):
        src = a["input"]
        if a["dim"] is None:
            self.values[node] = ("sizes", src)
        else:
            self.values[node] = ("size", src, a["dim"])

    def getitem(self, node):
        src, idx = node.args
        v = self.values.get(src) if isinstance(src, fx.Node) else None
        if v is not None and v[0] == "sizes" and isinstance(idx, int):
            self.values[node] = ("size", v[1], idx)
            return
        self.fail(node, "indexing or slicing a tensor" if v and v[0] == "t" else
                  self.describe(node))

    def reshape(self, node, src, dims):
        if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
            dims = list(dims[0])
        shape = self.shape(src) or ()
        name = self.flat_source(node, src)
        flat = math.prod(shape[1:]) if shape else None

        def batch(d):
            v = self.values.get(d) if isinstance(d, fx.Node) else None
            return v is not None and v[0] == "size" and _norm_dim(v[2], 4) == 0

        ok = (len(dims) == 2 and (batch(dims[0]) or dims[0] == -1)
              and (dims[1] == -1 or dims[1] == flat) and not (dims[0] == -1 and dims[1] == -1))
        if not ok:
            self.fail(node, self.describe(node),
                      f"a reshape of {list(shape)} to "
                      f"[{', '.join(str(self._dim_text(d)) for d in dims)}] (only "
                      f"x.view(x.size(0), -1) and the like, a flatten from dim 1)")
        self.values[node] = ("t", self.emit(node, {"op": "flatten"}, [name],
                                            base=_join(self._scope(node)[0], "flatten")))

    def _dim_text(self, d):
        v = self.values.get(d) if isinstance(d, fx.Node) else None
        return f"x.size({v[2]})" if v and v[0] == "size" else d

    # -- binary ops ----------------------------------------------------------

    def join(self, node, op, a, b):
        sa, sb = self.shape(a), self.shape(b)
        gate = (lambda g, x: len(g) == 4 and len(x) == 4 and g[0] == x[0]
                and tuple(g[1:]) == (x[1], 1, 1))
        if not (sa == sb or gate(sa, sb) or gate(sb, sa)):
            self.fail(node, self.describe(node),
                      f"{op} of shapes {list(sa or ())} and {list(sb or ())} (equal shapes, or "
                      f"[N, C, 1, 1] broadcast over [N, C, H, W])")
        return self.emit(node, {"op": op}, [self.tensor(node, a), self.tensor(node, b)])

    def scalar(self, node, src, scale=1.0, shift=0.0):
        layer = _prune("affine", {"op": "affine", "scale": float(scale), "shift": float(shift)})
        return self.emit(node, layer, [self.tensor(node, src)])

    def op_add(self, node, a):
        x, y, alpha = a["input"], a["other"], a["alpha"]
        if self.is_tensor(x) and self.is_tensor(y):
            if alpha != 1:
                if not _is_num(alpha):
                    self.fail(node, self.describe(node), f"alpha={alpha!r}")
                neg = self.scalar(node, y, scale=alpha)
                self.values[node] = ("t", self.emit(
                    node, {"op": "add"}, [self.tensor(node, x), neg]))
                return
            self.values[node] = ("t", self.join(node, "add", x, y))
        elif self.is_tensor(x) and _is_num(y):
            self.values[node] = ("t", self.scalar(node, x, shift=alpha * y))
        elif _is_num(x) and self.is_tensor(y) and alpha == 1:
            self.values[node] = ("t", self.scalar(node, y, shift=x))
        else:
            self.fail(node, self.describe(node), f"operands {x!r} and {y!r}")

    def op_sub(self, node, a):
        x, y, alpha = a["input"], a["other"], a["alpha"]
        if self.is_tensor(x) and self.is_tensor(y) and _is_num(alpha):
            neg = self.scalar(node, y, scale=-alpha)
            self.values[node] = ("t", self.emit(node, {"op": "add"}, [self.tensor(node, x), neg]))
        elif self.is_tensor(x) and _is_num(y):
            self.values[node] = ("t", self.scalar(node, x, shift=-alpha * y))
        elif _is_num(x) and self.is_tensor(y) and _is_num(alpha):
            self.values[node] = ("t", self.scalar(node, y, scale=-alpha, shift=x))
        else:
            self.fail(node, self.describe(node), f"operands {x!r} and {y!r}")

    def op_mul(self, node, a):
        x, y = a["input"], a["other"]
        if self.is_tensor(x) and self.is_tensor(y):
            self.values[node] = ("t", self.join(node, "mul", x, y))
        elif self.is_tensor(x) and _is_num(y):
            self.values[node] = ("t", self.scalar(node, x, scale=y))
        elif _is_num(x) and self.is_tensor(y):
            self.values[node] = ("t", self.scalar(node, y, scale=x))
        else:
            self.fail(node, self.describe(node), f"operands {x!r} and {y!r}")

    def op_div(self, node, a):
        x, y = a["input"], a["other"]
        if self.is_tensor(x) and _is_num(y) and y != 0 and a["rounding_mode"] is None:
            self.values[node] = ("t", self.scalar(node, x, scale=1.0 / y))
        else:
            self.fail(node, self.describe(node),
                      f"division of {x!r} by {y!r} (only by a non-zero number)")

    def op_neg(self, node, a):
        self.values[node] = ("t", self.scalar(node, a["input"], scale=-1.0))

    def op_cat(self, node, a):
        tensors = a["tensors"]
        if not isinstance(tensors, (list, tuple)) or not tensors:
            self.fail(node, self.describe(node), "no list of tensors")
        if len(tensors) == 1:                                   # a DenseNet's first layer
            self.values[node] = ("t", self.tensor(node, tensors[0]))
            return
        shapes = [self.shape(t) or () for t in tensors]
        n = len(shapes[0])
        fits = all(len(s) == n and s[0] == shapes[0][0] and s[2:] == shapes[0][2:]
                   for s in shapes)
        if n not in (2, 4) or _norm_dim(a["dim"], n) != 1 or not fits:
            self.fail(node, self.describe(node),
                      f"a concatenation along dim {a['dim']} of shapes "
                      f"{[list(s) for s in shapes]} (only along channels: feature maps of equal "
                      f"height and width, or flat vectors)")
        names = [self.tensor(node, t) for t in tensors]
        self.values[node] = ("t", self.emit(node, {"op": "concat"}, names))


def _trace_nodes(model, x):
    """``model`` (eval mode) traced by torch.fx into spec-v2 nodes, shapes
    propagated on the example batch ``x``."""
    sig = inspect.signature(model.forward)
    params = [p for p in sig.parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    concrete = {p.name: p.default for p in params[1:] if p.default is not p.empty}
    tracer = _Tracer()
    try:
        graph = tracer.trace(model, concrete_args=concrete or None)
    except Exception as e:
        path, typ = getattr(e, "_xai_module", ("", type(model).__name__))
        frames = traceback.format_tb(e.__traceback__)
        lines = [line for f in frames for line in f.splitlines()]
        raise UnsupportedModel(
            "a forward that torch.fx cannot trace", path, typ,
            source=_user_frame(lines),
            detail=f"{type(e).__name__}: {e} (tracing runs forward on symbolic tensors: Python "
                   f"control flow on tensor values, data-dependent shapes and non-torch "
                   f"calls on tensors do not trace)") from e
    with torch.no_grad():
        model(x)                      # the model's own error, if it fails, before fx's
    gm = fx.GraphModule(model, graph)
    with torch.no_grad():
        ShapeProp(gm).propagate(x)
    return _FxConverter(model, graph).run()


# --------------------------------------------------------------------------
# nn.Module -> spec version 1, by walking the module tree
# --------------------------------------------------------------------------

class _WalkCtx:
    def __init__(self, trace, in_spec_model):
        self.trace = trace                # id(module) -> list of (in_shape, out_shape)
        self.order = {}                   # id(module) -> first call index
        self.in_spec_model = in_spec_model


def _walk(m, path, ctx):
    """Module -> list of spec layers, in execution order."""
    if ctx.in_spec_model:
        path = getattr(m, "_xai_audit_param", path)
    if isinstance(m, SpecModel):
        out = []
        for sub in m._plan:
            out += _walk(sub, "", _WalkCtx(ctx.trace, True))
        return out
    if isinstance(m, Residual):
        layer = {"op": "residual", "body": _walk(m.body, _join(path, "body"), ctx)}
        if m.shortcut is not None:
            sc = _walk(m.shortcut, _join(path, "shortcut"), ctx)
            if sc:
                layer["shortcut"] = sc
        if m.activation is not None:
            act = _walk(m.activation, _join(path, "activation"), ctx)
            if len(act) > 1:
                raise ValueError(f"module '{_join(path, 'activation')}': a residual's "
                                 f"activation must be a single layer, got {len(act)}")
            if act:
                layer["activation"] = act[0]
        return [layer]
    if isinstance(m, nn.Sequential):
        out = []
        for name, child in m._modules.items():
            if child is not None:
                out += _walk(child, _join(path, name), ctx)
        return out
    layer = _leaf_layer(m, path)
    if layer is None:
        return []
    if layer is not NotImplemented:
        return [layer]
    # A custom container: its children, in the order forward() called them.
    where = f"module '{path or '<root>'}' ({type(m).__name__})"
    children = [(n, c) for n, c in m._modules.items() if c is not None]
    own = list(m._parameters.values()) + [b for n, b in m._buffers.items()
                                          if n not in m._non_persistent_buffers_set]
    if not children or any(t is not None for t in own):
        raise ValueError(f"unsupported {where}: the spec has no layer for it (supported: "
                         f"Linear, Conv2d, BatchNorm1d/2d, MaxPool2d, AvgPool2d, "
                         f"AdaptiveAvgPool2d, GlobalAvgPool2d, ReLU, LeakyReLU, GELU, SiLU, "
                         f"Tanh, Sigmoid, Flatten, Dropout, Identity, Residual, Sequential)")
    called = [(n, c) for n, c in children if id(c) in ctx.trace]
    called.sort(key=lambda nc: ctx.order[id(nc[1])])
    out = []
    prev = ctx.trace[id(m)][0][0] if id(m) in ctx.trace else None
    for name, child in called:
        in_shape, out_shape = ctx.trace[id(child)][0]
        if _is_flatten(prev, in_shape):
            out.append({"op": "flatten"})
        out += _walk(child, _join(path, name), ctx)
        prev = out_shape
    if id(m) in ctx.trace and _is_flatten(prev, ctx.trace[id(m)][0][1]):
        out.append({"op": "flatten"})
    return out


def _is_flatten(a, b):
    return (a is not None and b is not None and len(a) >= 3 and len(b) == 2
            and a[0] == b[0] and math.prod(a[1:]) == b[1])


def _shape_of(v):
    if isinstance(v, (tuple, list)) and v:
        v = v[0]
    return tuple(v.shape) if isinstance(v, torch.Tensor) else None


# --------------------------------------------------------------------------
# spec_from_module
# --------------------------------------------------------------------------

def _spec_head(model, shape, mean, std, classes, name, input_range, version):
    """The spec's top-level keys but the network; defaults from a model built
    from a spec. Returns (spec, inner_norm): ``inner_norm`` when the model
    normalizes its input itself (a model built from a spec)."""
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be [C, H, W] of positive ints, got {shape!r}")
    c = shape[0]
    inner_norm = False
    if isinstance(model, (SpecModel, GraphModel)):   # defaults from the spec it was built from
        s_in = model.spec["input"]
        for key, given in (("mean", mean), ("std", std)):
            have = s_in.get(key)
            if given is not None and have is not None and \
                    [float(v) for v in given] != [float(v) for v in have]:
                raise ValueError(f"{key} differs from the one built into this model")
        mean = s_in.get("mean") if mean is None else mean
        std = s_in.get("std") if std is None else std
        inner_norm = True
        name = model.spec.get("name") if name is None else name
        classes = model.spec.get("classes") if classes is None else classes
        if tuple(float(v) for v in input_range) == (0.0, 1.0):
            input_range = s_in.get("range", input_range)
    lo, hi = (float(v) for v in input_range)
    if not lo < hi:
        raise ValueError(f"input_range must have lo < hi, got {input_range!r}")

    spec = {"version": version}
    if name is not None:
        spec["name"] = str(name)
    inp = {"shape": shape}
    if (lo, hi) != (0.0, 1.0):
        inp["range"] = [lo, hi]
    for key, val in (("mean", mean), ("std", std)):
        if val is not None:
            vals = [float(v) for v in (val.tolist() if hasattr(val, "tolist") else val)]
            if len(vals) != c:
                raise ValueError(f"{key} has {len(vals)} values, the input has {c} channels")
            inp[key] = vals
    if std is not None and any(v == 0 for v in inp["std"]):
        raise ValueError("std must be non-zero")
    spec["input"] = inp
    if classes is not None:
        spec["classes"] = [str(k) for k in classes]
    return spec, inner_norm


def spec_from_module(model, input_shape, mean=None, std=None, classes=None, name=None,
                     input_range=(0.0, 1.0), verify=True, version=2):
    """Describe ``model`` as an architecture spec (a JSON-ready dict).

    ``input_shape`` is ``[C, H, W]``; ``mean``/``std`` (C numbers each) the input
    normalization to apply inside the network (``model`` itself takes
    normalized inputs); ``classes`` the class names; ``input_range`` the valid
    pixel range.

    Version 2 (the default) traces ``forward`` with torch.fx into a graph of
    nodes: every module call becomes a node named by the module's path, whose
    ``param`` is that path, so ``model.state_dict()`` loads unchanged; skip
    connections, ``torch.cat``, functional activations and pooling, flattening
    reshapes and arithmetic by constants become nodes too. Anything else
    raises :class:`UnsupportedModel` (a ValueError) naming the first construct
    it cannot express, the module whose forward does it and its source line,
    and the ONNX route. Version 1 walks the module tree into a list of layers
    (``nn.Sequential``, ``Residual``; the format of the older files).

    The model runs in eval mode (training flags are restored) on a random
    batch of 2 to propagate shapes, and, with ``verify``, the spec rebuilt in
    PyTorch with the model's weights must reproduce its output on another
    batch (of 3, so a hard-coded batch size shows). Raises ValueError for
    anything the spec cannot express.
    """
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2, got {version!r}")
    shape = [int(s) for s in input_shape]
    spec, inner_norm = _spec_head(model, shape, mean, std, classes, name, input_range, version)
    inp = spec["input"]
    lo, hi = inp.get("range", [0.0, 1.0])
    c = shape[0]

    ref = next((t for t in list(model.parameters()) + list(model.buffers())
                if t.is_floating_point()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None else torch.float32

    def batch(n, seed):
        gen = torch.Generator().manual_seed(seed)
        x = lo + (hi - lo) * torch.rand([n] + shape, generator=gen)
        xin = x
        if not inner_norm and ("mean" in inp or "std" in inp):
            m_ = torch.tensor(inp.get("mean", [0.0] * c)).view(-1, 1, 1)
            s_ = torch.tensor(inp.get("std", [1.0] * c)).view(-1, 1, 1)
            xin = (x - m_) / s_
        return x, xin.to(device=device, dtype=dtype)

    modes = {mod: mod.training for mod in model.modules()}
    model.eval()
    try:
        if version == 1:
            key = "layers"
            spec[key], y = _layers_v1(model, batch(2, 1234)[1])
        else:
            key = "nodes"
            if isinstance(model, GraphModel):
                spec[key] = copy.deepcopy(model.spec["nodes"])
            elif isinstance(model, SpecModel):
                spec[key] = _v1_to_v2_nodes(model.spec["layers"])
            else:
                try:
                    spec[key] = _trace_nodes(model, batch(2, 1234)[1])
                except UnsupportedModel:
                    raise
                except Exception as e:
                    raise ValueError(f"running the model on an input of shape {[2] + shape} "
                                     f"failed: {type(e).__name__}: {e}") from e
        x3, x3in = batch(3, 4321)
        with torch.no_grad():
            y = model(x3in)
    finally:
        for mod, mode in modes.items():
            mod.train(mode)

    if not isinstance(y, torch.Tensor) or y.dim() != 2:
        raise ValueError(f"the model must return logits [N, classes], got "
                         f"{_shape_of(y) if not isinstance(y, torch.Tensor) else tuple(y.shape)}")
    if classes is not None and len(spec["classes"]) != y.shape[1]:
        raise ValueError(f"{len(spec['classes'])} class names for {y.shape[1]} outputs")

    if verify:
        sd = model.state_dict()
        if isinstance(model, GraphModel) and model.spec.get("strip_prefix"):
            spec["strip_prefix"] = model.spec["strip_prefix"]
        built = build_from_spec(spec)
        missing = [k for k in built.state_dict() if k not in sd]
        if missing:
            raise ValueError(f"the spec needs tensors the model does not have: {missing[:8]}")
        built.load_state_dict({k: _as_f32(sd[k]) for k in built.state_dict()}, strict=True)
        with torch.no_grad():
            yb = built(x3)
        ym = y.detach().float().cpu()
        tol = 1e-4 if dtype in (torch.float32, torch.float64) else 3e-2
        scale = 1.0 + float(ym.abs().max())
        if yb.shape != ym.shape or not bool(((yb - ym).abs() <= tol * scale).all()):
            diff = float((yb - ym).abs().max()) if yb.shape == ym.shape else float("nan")
            hint = ("a forward() probably does something that is not a module call (functional "
                    "ops, reused modules, branches): use nn.Sequential / Residual, nn.Flatten "
                    "and activation modules, or version=2" if version == 1 else
                    "an in-place operation on a tensor that is read again later, or a Python "
                    "value fixed at trace time (a batch size, a training flag), is the usual "
                    f"cause; {ONNX_ROUTE}")
            raise ValueError(
                f"the spec does not reproduce the model's output (max abs diff {diff:.3g}, "
                f"shapes {tuple(yb.shape)} vs {tuple(ym.shape)}): {hint}")
    return spec


def _layers_v1(model, xin):
    """Version 1: the module tree walked into a list of layers, ordered by
    one forward pass on ``xin``; returns (layers, output)."""
    trace, order = {}, {}
    hooks = []

    def hook(mod, args, output):
        key = id(mod)
        order.setdefault(key, len(order))
        trace.setdefault(key, []).append((_shape_of(args), _shape_of(output)))

    seen = set()
    for mod in model.modules():
        if id(mod) not in seen:
            seen.add(id(mod))
            hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            y = model(xin)
    except Exception as e:
        ctx = _WalkCtx(trace, False)
        ctx.order = order
        _walk(model, "", ctx)             # an unsupported module explains it best
        raise ValueError(f"running the model on an input of shape {list(xin.shape)} failed: "
                         f"{type(e).__name__}: {e}") from e
    finally:
        for h in hooks:
            h.remove()
    ctx = _WalkCtx(trace, False)
    ctx.order = order
    return _walk(model, "", ctx), y


def _v1_to_v2_nodes(layers):
    """A v1 layer list as v2 nodes, named as xai-audit names them on read
    (``3``; a residual block at 4: ``4.shortcut.0``..., ``4.body.0``..., the
    sum ``4``, or ``4.sum`` and its activation ``4``)."""
    nodes = []

    def chain(items, prefix, cur):
        for i, layer in enumerate(items):
            path = f"{prefix}{i}"
            if layer["op"] == "residual":
                skip = cur
                if layer.get("shortcut"):
                    skip = chain(layer["shortcut"], f"{path}.shortcut.", cur)
                main = chain(layer["body"], f"{path}.body.", cur)
                act = layer.get("activation")
                total = f"{path}.sum" if act else path
                nodes.append({"name": total, "op": "add", "inputs": [main, skip]})
                cur = total
                if act:
                    nodes.append(dict({"name": path}, **act, inputs=[cur]))
                    cur = path
            else:
                nodes.append(dict({"name": path}, **layer, inputs=[cur]))
                cur = path
        return cur

    chain(layers, "", "input")
    prev = "input"
    out = []
    for n in nodes:
        n = {"name": n["name"], "op": n["op"], "inputs": n["inputs"],
             **{k: v for k, v in n.items() if k not in ("name", "op", "inputs")}}
        if n["inputs"] == [prev]:
            del n["inputs"]
        prev = n["name"]
        out.append(n)
    return out


def _as_f32(t):
    t = t.detach().cpu()
    return t.float() if t.is_floating_point() else t


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------

def export(model, path, spec, dtype=torch.float32):
    """Save ``model.state_dict()`` (floating tensors cast to ``dtype``) with the
    spec in the safetensors metadata. Checks that the spec uses exactly the
    state_dict's tensors first."""
    check_spec(spec)
    sd = model.state_dict()
    built = build_from_spec(spec)
    want, have = set(built.state_dict()), set(sd)
    want |= {k for k in have if k.endswith(".num_batches_tracked")
             and k[: -len(".num_batches_tracked")] + ".running_mean" in want}
    if want != have:
        raise ValueError(f"spec and state_dict disagree: missing from the model "
                         f"{sorted(want - have)[:8]}, "
                         f"not used by the spec {sorted(have - want)[:8]}")
    tensors = {}
    for k, t in sd.items():
        t = t.detach().cpu()
        if t.is_floating_point():
            t = t.to(dtype)
        tensors[k] = t.contiguous().clone()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={META_KEY: json.dumps(spec)})


# --------------------------------------------------------------------------
# Spec -> nn.Module
# --------------------------------------------------------------------------

def _check_keys(obj, allowed, where):
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected an object, got {type(obj).__name__}")
    for key in obj:
        if key not in allowed:
            raise ValueError(f"{where}: unknown key {key!r}")


def _check_layer(layer, where, version=1, extra=()):
    """One v1 layer or v2 node's op and keys (``extra``: keys the caller owns)."""
    if not isinstance(layer, dict) or "op" not in layer:
        raise ValueError(f"{where}: a layer must be an object with an 'op'")
    op = layer["op"]
    ops = _V1_OPS if version == 1 else _V2_OPS
    if op not in ops:
        hint = (" (a version 1 layer; in version 2 write its branches as nodes joined by an "
                "'add')" if op == "residual" else "")
        raise ValueError(f"{where}: unknown op {op!r}{hint}")
    required, defaults = _OPS[op]
    allowed = {"op", *required, *defaults, *extra}
    if op in _PARAM_OPS:
        allowed.add("param")
    _check_keys(layer, allowed, f"{where} ({op})")
    for key in required + (("param",) if op in _PARAM_OPS else ()):
        if key not in layer:
            raise ValueError(f"{where} ({op}): missing {key!r}")
    if op in _PARAM_OPS:
        p = layer["param"]
        if not isinstance(p, str) or not p or any(not part for part in p.split(".")):
            raise ValueError(f"{where} ({op}): bad param {p!r}")
    if op == "flatten" and layer.get("start_dim", 1) != 1:
        raise ValueError(f"{where} (flatten): only start_dim 1 is supported")
    if op == "gelu" and layer.get("approximate", "none") not in ("none", "tanh"):
        raise ValueError(f"{where} (gelu): approximate must be 'none' or 'tanh'")
    if op == "pad2d" and not (isinstance(layer["padding"], list) and len(layer["padding"]) == 4):
        raise ValueError(f"{where} (pad2d): padding must be [top, bottom, left, right]")
    for key in _SIZE_KEYS & set(layer):
        if op != "pad2d":
            _pair(layer[key], f"{where} ({op}) {key}")
    if op == "residual":
        if not isinstance(layer["body"], list):
            raise ValueError(f"{where} (residual): body must be a list of layers")
        for i, sub in enumerate(layer["body"]):
            _check_layer(sub, f"{where}.body[{i}]")
        if "shortcut" in layer:
            if not isinstance(layer["shortcut"], list):
                raise ValueError(f"{where} (residual): shortcut must be a list of layers")
            for i, sub in enumerate(layer["shortcut"]):
                _check_layer(sub, f"{where}.shortcut[{i}]")
        if "activation" in layer:
            _check_layer(layer["activation"], f"{where}.activation")


def _node_inputs(nodes, i):
    """Node ``i``'s inputs, with the default (the node before, or ``input``)."""
    inputs = nodes[i].get("inputs")
    if inputs is None:
        return [nodes[i - 1]["name"]] if i else ["input"]
    return [inputs] if isinstance(inputs, str) else list(inputs)


def _check_nodes(nodes):
    """Version 2: every node's op and keys, unique names, inputs that come
    earlier, arities, and every node but the last read by another."""
    if not isinstance(nodes, list) or not nodes:
        raise ValueError("nodes must be a non-empty list")
    seen, used = {}, set()
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        if not isinstance(node, dict):
            raise ValueError(f"{where}: expected an object with a 'name' and an 'op'")
        name = node.get("name")
        if not isinstance(name, str) or not name or name == "input":
            raise ValueError(f"{where}: 'name' must be a non-empty string other than 'input'")
        where = f"nodes[{i}] '{name}'"
        _check_layer(node, where, version=2, extra=("name", "inputs"))
        inputs = _node_inputs(nodes, i)
        if not all(isinstance(s, str) for s in inputs):
            raise ValueError(f"{where}: inputs must be node names")
        lo, hi = _ARITY.get(node["op"], (1, 1))
        if not lo <= len(inputs) <= hi:
            raise ValueError(f"{where} ({node['op']}): takes {lo if lo == hi else f'at least {lo}'}"
                             f" inputs, given {len(inputs)}")
        for s in inputs:
            if s != "input" and s not in seen:
                raise ValueError(f"{where}: input {s!r} names no earlier node")
            used.add(s)
        if name in seen:
            raise ValueError(f"{where}: the name {name!r} is used twice")
        seen[name] = i
    for node in nodes[:-1]:
        if node["name"] not in used:
            raise ValueError(f"node '{node['name']}': its output is never used")


def check_spec(spec):
    """Validate a spec of version 1 or 2 (keys, ops, for version 2 the graph's
    wiring); raises ValueError naming the problem. Shapes are checked when
    the model is built and run."""
    if not isinstance(spec, dict):
        raise ValueError("spec: expected a JSON object")
    v = spec.get("version")
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"spec: bad or missing version {v!r}")
    if v > SPEC_VERSION:
        raise ValueError(f"spec version {v} is newer than this script understands "
                         f"(versions 1 and {SPEC_VERSION}); update export_pytorch.py")
    key = "layers" if v == 1 else "nodes"
    _check_keys(spec, _TOP_KEYS_V1 if v == 1 else _TOP_KEYS_V2, "spec")
    for k in ("input", key):
        if k not in spec:
            raise ValueError(f"spec: missing {k!r}")
    inp = spec["input"]
    _check_keys(inp, _INPUT_KEYS, "input")
    if "shape" not in inp:
        raise ValueError("input: missing 'shape'")
    shape = inp["shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(
            isinstance(s, int) and s > 0 for s in shape)):
        raise ValueError(f"input.shape must be [C, H, W], got {shape!r}")
    for k in ("mean", "std"):
        if k in inp and (not isinstance(inp[k], list) or len(inp[k]) != shape[0]):
            raise ValueError(f"input.{k} must have {shape[0]} numbers")
    if "range" in inp and (not isinstance(inp["range"], list) or len(inp["range"]) != 2
                           or not inp["range"][0] < inp["range"][1]):
        raise ValueError(f"input.range must be [lo, hi] with lo < hi, got {inp['range']!r}")
    if "classes" in spec and not (isinstance(spec["classes"], list)
                                  and all(isinstance(c, str) for c in spec["classes"])):
        raise ValueError("classes must be a list of strings")
    if "strip_prefix" in spec and not isinstance(spec["strip_prefix"], str):
        raise ValueError("strip_prefix must be a string")
    if v == 1:
        if not isinstance(spec["layers"], list):
            raise ValueError("layers must be a list")
        for i, layer in enumerate(spec["layers"]):
            _check_layer(layer, f"layers[{i}]")
    else:
        _check_nodes(spec["nodes"])


class _Node(nn.Module):
    """A container that only reproduces a state_dict prefix; never called."""

    def forward(self, *args):  # pragma: no cover
        raise RuntimeError("_Node is a naming container and is not callable")


def _attach(root, prefix, module):
    """Registers ``module`` under the dotted ``prefix`` of ``root``, making
    naming containers for the path (state_dict names = the spec's params)."""
    parent = root
    parts = prefix.split(".")
    for part in parts[:-1]:
        child = parent._modules.get(part)
        if child is None:
            child = _Node()
            try:
                parent.add_module(part, child)
            except (KeyError, TypeError) as e:
                raise ValueError(f"param {prefix!r}: cannot create {part!r}: {e}") from None
        parent = child
    existing = parent._modules.get(parts[-1])
    if isinstance(existing, _Node):      # made earlier as a container for a deeper prefix
        for name, child in existing._modules.items():
            module.add_module(name, child)
    elif existing is not None:
        raise ValueError(f"param {prefix!r} is used twice")
    try:
        parent.add_module(parts[-1], module)
    except (KeyError, TypeError) as e:
        raise ValueError(f"param {prefix!r}: {e}") from None


class ChannelAffine(nn.Module):
    """``x * weight[c] + bias[c]`` per channel of ``[N, C, H, W]`` or ``[N, C]``."""

    def __init__(self, num_features, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features)) if bias else None

    def forward(self, x):
        view = (1, -1) + (1,) * (x.dim() - 2)
        y = x * self.weight.view(view)
        return y if self.bias is None else y + self.bias.view(view)


class RandomResizePad(nn.Module):
    """Xie et al. 2018's randomization layer, as xai-audit's
    ``random_resize_pad``: each input resized by nearest neighbour to a height
    drawn from ``min_size..max_size`` (the width keeping the aspect ratio,
    rounded) and placed at a random offset on a ``size`` canvas filled with
    ``value``. Draws come from torch's generator, so they are not xai-audit's
    (keyed by seed and input): compare the two statistically."""

    def __init__(self, min_size, max_size=None, size=None, value=0.0):
        super().__init__()
        self.min_size, self.max_size, self.size, self.value = min_size, max_size, size, value

    def forward(self, x):
        n, c, h, w = x.shape
        ch, cw = _pair(self.size) if self.size is not None else (h, w)
        top_size = self.max_size if self.max_size is not None else ch
        out = x.new_full((n, c, ch, cw), self.value)
        for i in range(n):
            rh = int(torch.randint(self.min_size, top_size + 1, ()).item())
            rw = max(1, (rh * w + h // 2) // h)
            top = int(torch.randint(0, ch - rh + 1, ()).item())
            left = int(torch.randint(0, cw - rw + 1, ()).item())
            # mode="nearest": source index floor(dst · in / out), as xai-audit.
            small = F.interpolate(x[i:i + 1], size=(rh, rw), mode="nearest")
            out[i:i + 1, :, top:top + rh, left:left + rw] = small
        return out

    def extra_repr(self):
        return f"min_size={self.min_size}, max_size={self.max_size}, size={self.size}, value={self.value}"


class _Fn(nn.Module):
    """A parameterless op of the spec (clip, affine, pad2d, ...) as a module."""

    def __init__(self, fn, text):
        super().__init__()
        self.fn, self.text = fn, text

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self):
        return self.text


def _module_for(layer, where):
    """The torch module of one single-input spec op (a v1 layer or a v2 node)."""
    op = layer["op"]
    g = layer.get
    if op == "linear":
        return nn.Linear(layer["in_features"], layer["out_features"], bias=g("bias", True))
    if op == "conv2d":
        return nn.Conv2d(layer["in_channels"], layer["out_channels"],
                         _pair(layer["kernel_size"]), stride=_pair(g("stride", 1)),
                         padding=_pair(g("padding", 0)), dilation=_pair(g("dilation", 1)),
                         groups=g("groups", 1), bias=g("bias", True))
    if op in ("batch_norm1d", "batch_norm2d"):
        cls = nn.BatchNorm1d if op == "batch_norm1d" else nn.BatchNorm2d
        return cls(layer["num_features"], eps=g("eps", 1e-5), affine=g("affine", True))
    if op == "max_pool2d":
        k = _pair(layer["kernel_size"])
        return nn.MaxPool2d(k, stride=_pair(g("stride", k)), padding=_pair(g("padding", 0)),
                            dilation=_pair(g("dilation", 1)), ceil_mode=g("ceil_mode", False))
    if op == "avg_pool2d":
        k = _pair(layer["kernel_size"])
        return nn.AvgPool2d(k, stride=_pair(g("stride", k)), padding=_pair(g("padding", 0)),
                            ceil_mode=g("ceil_mode", False),
                            count_include_pad=g("count_include_pad", True))
    if op == "adaptive_avg_pool2d":
        return nn.AdaptiveAvgPool2d(_pair(layer["output_size"]))
    if op == "global_avg_pool2d":
        return GlobalAvgPool2d()
    if op == "relu":
        return nn.ReLU()
    if op == "leaky_relu":
        return nn.LeakyReLU(g("negative_slope", 0.01))
    if op == "gelu":
        return nn.GELU(approximate=g("approximate", "none"))
    if op == "silu":
        return nn.SiLU()
    if op == "tanh":
        return nn.Tanh()
    if op == "sigmoid":
        return nn.Sigmoid()
    if op == "flatten":
        return nn.Flatten()
    if op == "dropout":
        if g("active", False):
            p = float(g("p", 0.5))
            # Monte-Carlo dropout: on in eval mode too.
            return _Fn(lambda x: F.dropout(x, p, training=True), f"p={p}, active")
        return nn.Dropout(g("p", 0.5))
    if op == "random_resize_pad":
        return RandomResizePad(layer["min_size"], g("max_size"), g("size"), float(g("value", 0.0)))
    if op == "clip":
        lo, hi = float(layer["min"]), float(layer["max"])
        # hardtanh, not clamp: PyTorch's ReLU6/Hardtanh pass no gradient at the bounds.
        return _Fn(lambda x: F.hardtanh(x, lo, hi), f"min={lo}, max={hi}")
    if op == "hard_sigmoid":
        alpha, beta = float(g("alpha", 1.0 / 6.0)), float(g("beta", 0.5))
        if (alpha, beta) == (1.0 / 6.0, 0.5):
            return nn.Hardsigmoid()               # bit for bit what the exporting model ran
        return _Fn(lambda x: F.hardtanh(x * alpha + beta, 0.0, 1.0),
                   f"alpha={alpha}, beta={beta}")
    if op == "hard_swish":
        return nn.Hardswish()
    if op == "softmax":
        return nn.Softmax(dim=1)
    if op == "affine":
        scale, shift = float(g("scale", 1.0)), float(g("shift", 0.0))
        return _Fn(lambda x: x * scale + shift, f"scale={scale}, shift={shift}")
    if op == "channel_affine":
        return ChannelAffine(layer["num_features"], bias=g("bias", True))
    if op == "pad2d":
        top, bottom, left, right = layer["padding"]
        value = float(g("value", 0.0))
        return _Fn(lambda x: F.pad(x, (left, right, top, bottom), value=value),
                   f"padding={layer['padding']}, value={value}")
    raise ValueError(f"{where}: unknown op {op!r}")  # unreachable after check_spec


def _concat(*xs):
    return torch.cat(xs, dim=1)


_JOINS = {"add": operator.add, "mul": operator.mul, "concat": _concat}


class SpecModel(nn.Module):
    """The network a version-1 spec describes.

    Parametric layers live in a module tree whose attribute paths are the spec's
    ``param`` prefixes (so ``state_dict`` names match the exporting model's);
    forward runs the spec's layers in order after ``(x - mean) / std``.
    """

    def __init__(self, spec):
        super().__init__()
        check_spec(spec)
        if spec["version"] != 1:
            raise ValueError("SpecModel builds version 1 specs; use GraphModel (or "
                             "build_from_spec) for version 2")
        self.spec = copy.deepcopy(spec)
        self._by_prefix = {}
        self._plan = [self._make(l, f"layers[{i}]") for i, l in enumerate(spec["layers"])]
        for prefix, (_, module) in self._by_prefix.items():       # plan order
            _attach(self, prefix, module)
        del self._by_prefix
        _register_norm(self, spec["input"])

    def _make(self, layer, where):
        op = layer["op"]
        if op == "residual":
            body = nn.Sequential(*[self._make(l, f"{where}.body[{i}]")
                                   for i, l in enumerate(layer["body"])])
            sc = layer.get("shortcut")
            sc = nn.Sequential(*[self._make(l, f"{where}.shortcut[{i}]")
                                 for i, l in enumerate(sc)]) if sc else None
            act = layer.get("activation")
            act = self._make(act, f"{where}.activation") if act is not None else None
            return Residual(body, sc, act)
        if op in _PARAM_OPS:
            prefix = layer["param"]
            if prefix in self._by_prefix:
                prev_layer, prev = self._by_prefix[prefix]
                if prev_layer != layer:
                    raise ValueError(f"{where}: param {prefix!r} is used by two different layers")
                return prev                       # the same weights, shared
        m = _module_for(layer, where)
        if op in _PARAM_OPS:
            m._xai_audit_param = prefix
            self._by_prefix[prefix] = (layer, m)
        return m

    def train(self, mode=True):
        # The plan's parameterless layers (dropout) live outside the module tree.
        super().train(mode)
        for m in self._plan:
            m.train(mode)
        return self

    def extra_repr(self):
        ops = [l["op"] for l in self.spec["layers"]]
        return f"layers={ops}, normalize={self.has_norm}"

    def forward(self, x):
        if self.has_norm:
            x = (x - self.input_mean.to(x.dtype)) / self.input_std.to(x.dtype)
        for m in self._plan:
            x = m(x)
        return x


def _register_norm(model, inp):
    c = inp["shape"][0]
    model.has_norm = "mean" in inp or "std" in inp
    mean = torch.tensor([float(v) for v in inp.get("mean", [0.0] * c)]).view(-1, 1, 1)
    std = torch.tensor([float(v) for v in inp.get("std", [1.0] * c)]).view(-1, 1, 1)
    model.register_buffer("input_mean", mean, persistent=False)
    model.register_buffer("input_std", std, persistent=False)


class GraphModel(nn.Module):
    """The network a version-2 spec describes.

    Nodes with weights are modules registered at their ``param`` paths (so
    ``state_dict`` names are the spec's, and two nodes with one ``param``
    share it); forward applies ``(x - mean) / std``, then runs the nodes in
    order, each on the outputs of its ``inputs``, and returns the last node's.
    """

    def __init__(self, spec):
        super().__init__()
        check_spec(spec)
        if spec["version"] != 2:
            raise ValueError("GraphModel builds version 2 specs; use SpecModel (or "
                             "build_from_spec) for version 1")
        self.spec = copy.deepcopy(spec)
        by_prefix = {}
        self._steps = []
        nodes = spec["nodes"]
        for i, node in enumerate(nodes):
            where = f"nodes[{i}] '{node['name']}'"
            op = node["op"]
            if op in _JOINS:
                fn = _JOINS[op]
            else:
                layer = {k: v for k, v in node.items() if k not in ("name", "inputs")}
                prefix = layer.get("param") if op in _PARAM_OPS else None
                if prefix is not None and prefix in by_prefix:
                    prev_layer, fn = by_prefix[prefix]
                    if prev_layer != layer:
                        raise ValueError(f"{where}: param {prefix!r} is used by two different "
                                         f"layers")
                else:
                    fn = _module_for(layer, where)
                    if prefix is not None:
                        by_prefix[prefix] = (layer, fn)
            self._steps.append((node["name"], fn, _node_inputs(nodes, i)))
        for prefix, (_, module) in by_prefix.items():
            _attach(self, prefix, module)
        _register_norm(self, spec["input"])

    def train(self, mode=True):
        # Parameterless nodes (dropout) live outside the module tree.
        super().train(mode)
        for _, fn, _ in self._steps:
            if isinstance(fn, nn.Module):
                fn.train(mode)
        return self

    def extra_repr(self):
        return f"nodes={len(self._steps)}, normalize={self.has_norm}"

    def forward(self, x):
        if self.has_norm:
            x = (x - self.input_mean.to(x.dtype)) / self.input_std.to(x.dtype)
        values = {"input": x}
        name = "input"
        for name, fn, inputs in self._steps:
            values[name] = fn(*[values[s] for s in inputs])
        return values[name]


def build_from_spec(spec, weights=None):
    """Build the eval-mode torch model ``spec`` (version 1 or 2) describes: a
    :class:`SpecModel` or a :class:`GraphModel`. With ``weights`` (a dict of
    tensors keyed by state_dict name; the spec's ``strip_prefix`` is taken
    off) load them, cast to float32: a missing tensor is an error, a tensor
    no layer uses a warning (as in xai-audit); ``num_batches_tracked`` may be
    absent."""
    check_spec(spec)
    model = SpecModel(spec) if spec["version"] == 1 else GraphModel(spec)
    if weights is not None:
        prefix = spec.get("strip_prefix")
        weights = {(k[len(prefix):] if prefix and k.startswith(prefix) else k): _as_f32(v)
                   for k, v in weights.items()}
        for k in model.state_dict():
            if k.endswith(".num_batches_tracked") and k not in weights:
                weights[k] = torch.tensor(0, dtype=torch.long)
        want = model.state_dict()
        missing = [k for k in want if k not in weights]
        if missing:
            raise ValueError(f"the weights do not match the spec: missing {missing[:8]}")
        unused = [k for k in weights if k not in want]
        if unused:
            warnings.warn(f"{len(unused)} tensors no layer uses: {unused[:8]}")
        try:
            model.load_state_dict({k: weights[k] for k in want}, strict=True)
        except RuntimeError as e:
            raise ValueError(f"the weights do not match the spec: {e}") from None
    return model.eval()


def _read_spec(arch):
    if isinstance(arch, dict):
        return arch
    text = str(arch)
    if text.lstrip().startswith("{"):
        return json.loads(text)
    with open(arch, encoding="utf-8") as f:
        return json.load(f)


def load(path, arch=None):
    """Load an exported model: spec from ``arch`` (a dict, JSON text or a JSON
    file), else the file's ``xai_audit.arch`` metadata, else ``<stem>.arch.json``."""
    path = Path(path)
    if arch is not None:
        spec = _read_spec(arch)
    else:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if META_KEY in meta:
            spec = json.loads(meta[META_KEY])
        else:
            sidecar = path.with_name(path.stem + ".arch.json")
            if not sidecar.exists():
                raise ValueError(f"{path}: no '{META_KEY}' metadata and no sidecar {sidecar}; "
                                 f"pass arch=")
            spec = _read_spec(sidecar)
    return build_from_spec(spec, load_file(str(path)))


# --------------------------------------------------------------------------
# Data and references
# --------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read an IDX file (MNIST format), gzipped or raw, into a numpy array."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dt = np.dtype(_IDX_DTYPES[data[2]])
    count = math.prod(dims)
    body = data[4 + 4 * ndim:]
    if len(body) < count * dt.itemsize:
        raise ValueError(f"{path}: truncated ({len(body)} bytes for {dims})")
    arr = np.frombuffer(body, dtype=dt, count=count).reshape(dims)
    return arr.astype(dt.newbyteorder("=")) if dt.byteorder == ">" else arr.copy()


def reference_tensors(model, x, labels, dtype=torch.float32):
    """Logits and the three input gradients on the CPU, computed in ``dtype``
    (the model is converted in place) and returned as float32."""
    model = model.to(dtype).cpu().eval()
    x = x.detach().to(dtype).cpu().clone().requires_grad_(True)
    y = torch.as_tensor(labels).long().cpu()
    with torch.enable_grad():
        z = model(x)
        k = z.shape[1]
        if k < 2:
            raise ValueError("the margin needs at least two classes")
        ce = F.cross_entropy(z, y, reduction="sum")
        (g_ce,) = torch.autograd.grad(ce, x, retain_graph=True)
        z_y = z.gather(1, y[:, None]).squeeze(1)
        (g_logit,) = torch.autograd.grad(z_y.sum(), x, retain_graph=True)
        others = z.masked_fill(F.one_hot(y, k).bool(), float("-inf"))
        margin = (z_y - others.max(dim=1).values).sum()
        (g_margin,) = torch.autograd.grad(margin, x)
    out = {"x": x.detach(), "labels": y, "logits": z.detach(), "grad_ce": g_ce,
           "grad_logit": g_logit, "grad_margin": g_margin}
    return {k: v.float().contiguous() for k, v in out.items()}


def cmd_reference(args):
    model = load(args.model, arch=args.arch)
    shape = model.spec["input"]["shape"]
    images = read_idx(args.data)
    n = min(args.count, images.shape[0])
    imgs = images[:n]
    if math.prod(imgs.shape[1:]) != math.prod(shape):
        raise SystemExit(f"images {images.shape[1:]} do not fit the input shape {shape}")
    x = torch.from_numpy(imgs.astype(np.float32).reshape([n] + shape) / np.float32(255.0))
    if args.labels:
        labels = torch.from_numpy(read_idx(args.labels)[:n].astype(np.int64))
    else:
        with torch.no_grad():
            labels = model(x).argmax(dim=1)
    ref = reference_tensors(model, x, labels)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_file(ref, args.out)
    acc = float((ref["logits"].argmax(1) == ref["labels"].long()).float().mean())
    print(f"wrote {args.out}: {n} inputs of {shape}, accuracy on them {acc:.3f}")


# --------------------------------------------------------------------------
# Test fixtures for the Rust side
# --------------------------------------------------------------------------

def _randomize_bn(bn):
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features) * 0.3)
        bn.running_var.copy_(torch.rand(bn.num_features) * 1.5 + 0.25)
        if bn.affine:
            bn.weight.copy_(torch.randn(bn.num_features) * 0.4 + 1.0)
            bn.bias.copy_(torch.randn(bn.num_features) * 0.3)
        bn.num_batches_tracked.fill_(7)


def _reinit(model, gain):
    """Larger-than-default weights so that logits and input gradients are O(1)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, gain / math.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.uniform_(-0.3, 0.3)


def _tiny_all_ops():
    from collections import OrderedDict as OD
    model = nn.Sequential(OD([
        ("stem", nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),                              # stem.0
            nn.BatchNorm2d(8),                                          # stem.1
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),                       # 12x12 -> 6x6
        )),
        ("block1", Residual(                                            # identity shortcut
            nn.Sequential(
                nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False),    # block1.body.0
                nn.BatchNorm2d(8),                                      # block1.body.1
                nn.GELU(),
                nn.Conv2d(8, 8, 3, padding=2, dilation=2),              # block1.body.3
            ),
            activation=nn.LeakyReLU(0.1))),
        ("pool", nn.AvgPool2d(2, stride=1)),                            # 6x6 -> 5x5
        ("block2", Residual(                                            # projection shortcut
            nn.Sequential(
                nn.Conv2d(8, 12, 3, stride=2, padding=1, bias=False),   # 5x5 -> 3x3
                nn.BatchNorm2d(12),
                nn.ReLU(),
                nn.Conv2d(12, 12, 3, padding=1),
            ),
            nn.Sequential(
                nn.Conv2d(8, 12, 1, stride=2, bias=False),              # 5x5 -> 3x3
                nn.BatchNorm2d(12),
            ))),
        ("act", nn.SiLU()),
        ("head", nn.Sequential(
            nn.AdaptiveAvgPool2d(2),                                    # 3x3 -> 2x2
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(48, 16),                                          # head.3
            nn.BatchNorm1d(16),                                         # head.4
            nn.Tanh(),
            nn.Linear(16, 12),                                          # head.6
            nn.Sigmoid(),
            nn.Linear(12, 5),                                           # head.8
        )),
    ]))
    _reinit(model, 1.5)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            _randomize_bn(m)
    with torch.no_grad():
        model.head[8].weight.mul_(3.0)
    return model.eval()


def _tiny_all_ops_inputs():
    x = torch.rand(6, 3, 12, 12)
    x[0] = 0.0                                          # all zeros
    x[1] = 1.0                                          # all ones
    x[2, :, :, :6] = 0.0                                # left half zeros, right half constant
    x[2, :, :, 6:] = 0.75
    x[3, :, 2:10, 2:10] = 0.5                           # constant square in a random frame
    # x[4], x[5]: random in [0, 1]
    return x


class _HeadNet(nn.Module):
    """tiny_head: a custom container (not nn.Sequential) walked via its forward."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, (3, 2), padding=(1, 0))
        self.act = nn.GELU(approximate="tanh")
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.smooth = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.squash = nn.Sigmoid()
        self.gap = GlobalAvgPool2d()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.squash(self.smooth(self.pool(self.act(self.conv(x)))))
        return self.fc(self.gap(x))


class _MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 32)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(torch.flatten(x, 1))))


def _small_conv():
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))


def _forward_raw(model, spec, x):
    """The exporting model applied as the spec says: normalization first."""
    inp = spec["input"]
    if "mean" in inp or "std" in inp:
        c = inp["shape"][0]
        mean = torch.tensor(inp.get("mean", [0.0] * c)).view(-1, 1, 1)
        std = torch.tensor(inp.get("std", [1.0] * c)).view(-1, 1, 1)
        x = (x - mean) / std
    with torch.no_grad():
        return model(x)


def _count_pool_ties(model, x):
    """Per input: max-pool windows whose maximum is attained more than once
    (all, and those with a positive maximum, where the gradient flows)."""
    mods = [m for top in getattr(model, "_plan", [model]) for m in top.modules()]
    pools = [m for m in mods if isinstance(m, nn.MaxPool2d)]
    seen = []
    hooks = [p.register_forward_hook(lambda mod, a, o: seen.append((mod, a[0].detach())))
             for p in pools]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    ties = torch.zeros(x.shape[0], dtype=torch.long)
    pos = torch.zeros(x.shape[0], dtype=torch.long)
    for mod, inp in seen:
        k, s, p, d = (_pair(mod.kernel_size), _pair(mod.stride), _pair(mod.padding),
                      _pair(mod.dilation))
        if mod.ceil_mode:
            raise NotImplementedError("tie count for ceil_mode")
        padded = F.pad(inp, (p[1], p[1], p[0], p[0]), value=float("-inf"))
        n, c = padded.shape[:2]
        cols = F.unfold(padded.reshape(n * c, 1, *padded.shape[2:]), k, dilation=d, stride=s)
        cols = cols.reshape(n, c, k[0] * k[1], -1)
        mx = cols.max(dim=2, keepdim=True).values
        multi = (cols == mx).sum(dim=2) > 1
        ties += multi.flatten(1).sum(1)
        pos += (multi & (mx.squeeze(2) > 0)).flatten(1).sum(1)
    return ties, pos


def cmd_fixtures(args):
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)          # reductions independent of the machine's core count
    written = []

    def save_ref(name, loaded, x, labels):
        path = out / f"{name}.ref.safetensors"
        save_file(reference_tensors(loaded, x, labels), str(path))
        written.append(path)

    def make(name, model, spec_kwargs, x, dtype=torch.float32):
        spec = spec_from_module(model, name=name.replace("_", "-"), version=1, **spec_kwargs)
        path = out / f"{name}.safetensors"
        export(model, path, spec, dtype=dtype)
        written.append(path)
        loaded = load(path)
        # The model as exported: weights rounded to `dtype`, then back to float32.
        exported = copy.deepcopy(model).to(dtype).float()
        want = _forward_raw(exported, spec, x)
        with torch.no_grad():
            got = loaded(x)
        diff = float((got - want).abs().max())
        assert diff == 0.0, f"{name}: loaded model differs from the built one by {diff}"
        with safe_open(str(path), framework="pt") as f:
            meta_spec = json.loads(f.metadata()[META_KEY])
        assert meta_spec == spec, f"{name}: metadata spec differs"
        rebuilt = build_from_spec(meta_spec, load_file(str(path)))
        again = spec_from_module(rebuilt, meta_spec["input"]["shape"], version=1)
        assert again == meta_spec, f"{name}: spec round trip failed:\n{again}\n{meta_spec}"
        labels = torch.randint(0, got.shape[1], (x.shape[0],))
        save_ref(name, loaded, x, labels)
        print(f"{name}: logits max|loaded - built| = {diff}, spec round trip ok, "
              f"labels {labels.tolist()}, predictions {got.argmax(1).tolist()}")
        return spec, loaded

    # tiny_all_ops: every op, max-pool ties on the constant inputs.
    model = _tiny_all_ops()
    x = _tiny_all_ops_inputs()
    _, loaded = make("tiny_all_ops", model, dict(
        input_shape=(3, 12, 12), mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3]), x)
    ties, pos = _count_pool_ties(loaded, x)
    print(f"tiny_all_ops: max-pool windows with a tied maximum per input {ties.tolist()} "
          f"(with a positive maximum: {pos.tolist()})")
    assert int(pos[:4].min()) > 0, "expected gradient-relevant max-pool ties"

    # tiny_head: non-square input, asymmetric conv, ceil-mode pool, class names.
    model = _HeadNet().eval()
    _reinit(model, 2.0)
    with torch.no_grad():
        model.fc.weight.mul_(4.0)
    x = torch.rand(4, 1, 9, 7)
    x[3] = 0.6                                          # a constant input
    make("tiny_head", model, dict(input_shape=(1, 9, 7), classes=["cat", "dog", "bird"]), x)

    # Half-precision files: references from the weights as rounded in the file.
    for name, dt in (("tiny_f16", torch.float16), ("tiny_bf16", torch.bfloat16)):
        model = _small_conv().eval()
        x = torch.rand(4, 1, 6, 6)
        make(name, model, dict(input_shape=(1, 6, 6), mean=[0.5], std=[0.25]), x, dtype=dt)

    # mlp: metadata, sidecar and metadata-less copies.
    model = _MLP().eval()
    x = torch.rand(4, 1, 28, 28)
    spec, _ = make("mlp", model, dict(input_shape=(1, 28, 28)), x)
    side = dict(spec, name="mlp-sidecar")
    for stem in ("mlp", "mlp_nometa"):
        p = out / f"{stem}.arch.json"
        p.write_text(json.dumps(side, indent=2) + "\n", encoding="utf-8")
        written.append(p)
    bare = out / "mlp_nometa.safetensors"
    save_file(load_file(str(out / "mlp.safetensors")), str(bare))
    written.append(bare)
    assert load(out / "mlp.safetensors").spec["name"] == "mlp"
    assert load(bare).spec["name"] == "mlp-sidecar"

    print("files:")
    for p in written:
        size = p.stat().st_size
        assert size < 200_000, f"{p} is too large ({size} bytes)"
        print(f"  {p.name:32s} {size:8d} bytes")


# --------------------------------------------------------------------------
# Traced examples: forwards that are not a plain sequence
# --------------------------------------------------------------------------

class _FunctionalCNN(nn.Module):
    """Functional activations, pooling and a view-flatten between module calls."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.act = nn.ReLU6()
        self.fc1 = nn.Linear(8 * 4 * 4, 24)
        self.bn3 = nn.BatchNorm1d(24)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(24, 5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)                  # 16 -> 8
        x = F.avg_pool2d(self.act(self.bn2(self.conv2(x))), 2)      # 8 -> 4
        x = x.view(x.size(0), -1)
        x = self.drop(F.gelu(self.bn3(self.fc1(x))))
        return self.fc2(x * 0.5 - 0.1)


class _BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class _ResNetish(nn.Module):
    """ResNet blocks whose skips are written in forward (``+=``, ``x + f(x)``)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.layer1 = _BasicBlock(8, 8, 1)
        self.layer2 = _BasicBlock(8, 16, 2)
        self.block = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.LeakyReLU(0.1))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = self.layer2(self.layer1(x))
        x = x + self.block(x)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


class _SE(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.fc2 = nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s


class _SENet(nn.Module):
    """Squeeze-and-excitation gates (``x * sigmoid(...)``), a depthwise conv,
    hard-swish/hard-sigmoid, SiLU and a mean over height and width."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 12, 3, stride=2, padding=1), nn.BatchNorm2d(12),
                                  nn.SiLU())
        self.se1 = _SE(12, 3)
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.act = nn.Hardswish()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(12, 12, 1), nn.Hardsigmoid())
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        x = self.se1(self.stem(x))
        y = self.act(self.dw(x))
        y = y * self.gate(y)
        return self.fc(torch.tanh(y.mean((2, 3))))


class _DenseNetish(nn.Module):
    """DenseNet-style concatenations along channels and a transition."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(8 + 4 * i), nn.ReLU(),
                          nn.Conv2d(8 + 4 * i, 4, 3, padding=1))
            for i in range(3))
        self.transition = nn.Sequential(nn.BatchNorm2d(20), nn.ReLU(), nn.Conv2d(20, 10, 1),
                                        nn.AvgPool2d(2))
        self.skip = nn.Identity()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(10, 5))

    def forward(self, x):
        features = [self.conv0(x)]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        x = self.transition(torch.cat(features, dim=1))
        return self.head(self.skip(x))


class _Upsampler(nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2.0)


class _NotExpressible(nn.Module):
    """An upsampling the spec has no op for, inside a submodule."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.decoder = nn.Sequential(nn.ReLU(), _Upsampler())
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.decoder(self.conv(x)).mean((2, 3)))


def cmd_traced(args):
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    for name, make in (("traced_cnn", _FunctionalCNN), ("traced_resnet", _ResNetish),
                       ("traced_se", _SENet), ("traced_dense", _DenseNetish)):
        model = make().eval()
        _reinit(model, 1.5)
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                _randomize_bn(m)
        spec = spec_from_module(model, (3, 16, 16), mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3],
                                classes=["a", "b", "c", "d", "e"], name=name.replace("_", "-"))
        path = out / f"{name}.safetensors"
        export(model, path, spec)
        loaded = load(path)
        x = torch.rand(8, 3, 16, 16)
        want = _forward_raw(model, spec, x)
        with torch.no_grad():
            got = loaded(x)
        assert float((got - want).abs().max()) == 0.0, f"{name}: loaded model differs"
        assert set(load_file(str(path))) == set(model.state_dict()), f"{name}: names changed"
        labels = torch.randint(0, 5, (x.shape[0],))
        save_file(reference_tensors(loaded, x, labels), str(out / f"{name}.ref.safetensors"))
        ops = sorted({n["op"] for n in spec["nodes"]})
        print(f"{name}: {len(spec['nodes'])} nodes ({', '.join(ops)}); wrote {path} and "
              f"{name}.ref.safetensors")
    try:
        spec_from_module(_NotExpressible().eval(), (3, 16, 16))
        raise AssertionError("F.interpolate was accepted")
    except UnsupportedModel as e:
        assert e.module == "decoder.1" and "interpolate" in str(e) and "onnx" in str(e), e
        print(f"an upsampling model: {e}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("reference", help="write logits and input gradients of MODEL on IDX data")
    p.add_argument("model")
    p.add_argument("--data", required=True, help="IDX images (gzipped or raw), pixels 0..255")
    p.add_argument("--labels", help="IDX labels; default: the model's predictions")
    p.add_argument("--count", type=int, default=16, help="first N images (default 16)")
    p.add_argument("--arch", help="architecture spec JSON (default: metadata, then sidecar)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_reference)
    p = sub.add_parser("fixtures", help="regenerate the Rust test fixtures")
    p.add_argument("outdir")
    p.set_defaults(func=cmd_fixtures)
    p = sub.add_parser("traced", help="export four traced models with references (version 2)")
    p.add_argument("outdir")
    p.set_defaults(func=cmd_traced)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ValueError as e:
        raise SystemExit(f"error: {e}")


if __name__ == "__main__":
    main()
