#!/usr/bin/env python3
"""PyTorch bridge for xai-audit: export models, rebuild them, write references.

xai-audit reads a network as a safetensors file of weights plus an
*architecture spec* (docs/arch-spec.md, version 1), a small JSON document stored
in the file's metadata under ``xai_audit.arch``. This script (stdlib + torch +
safetensors + numpy) produces and consumes such files from PyTorch.

Exporting a model
-----------------
Build the model from the supported modules (nested ``nn.Sequential`` is fine;
so are custom containers whose ``forward`` calls their children once each, in
order, with at most a flatten in between), then::

    import torch
    from export_pytorch import spec_from_module, export

    spec = spec_from_module(model, input_shape=(1, 28, 28),
                            mean=[0.1307], std=[0.3081],      # optional
                            classes=[str(i) for i in range(10)], name="mnist-cnn")
    export(model, "mnist_cnn.safetensors", spec)                # dtype=torch.float16 / bfloat16 too

``mean``/``std`` describe the normalization your training pipeline applied
*before* the model (torchvision ``Normalize``); xai-audit applies it inside the
network, so attacks and ε work in raw pixel units given by ``input_range``.
``spec_from_module`` runs the model once and checks that the spec rebuilt in
PyTorch reproduces its outputs; anything it cannot express raises ValueError.

Supported modules: nn.Linear, nn.Conv2d (zeros padding), nn.BatchNorm1d/2d
(with running stats), nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
GlobalAvgPool2d (below), nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh,
nn.Sigmoid, nn.Flatten (start_dim=1), nn.Dropout, nn.Identity (skipped), and
Residual (below) for skip connections.

Loading a model back
--------------------
``load(path)`` returns an eval-mode ``nn.Module`` that includes the input
normalization, reading the spec from the metadata, an ``arch=`` dict / JSON
file, or a sidecar ``<stem>.arch.json``.

Command line
------------
::

    python examples/export_pytorch.py reference MODEL.safetensors \\
        --data images-idx3-ubyte.gz [--labels labels-idx1-ubyte.gz] \\
        [--count N] [--arch ARCH.json] --out REF.safetensors
    python examples/export_pytorch.py fixtures OUTDIR

``reference`` writes float32 tensors ``x`` [N,C,H,W] (the first N images / 255),
``labels`` [N] (from --labels, else the model's predictions), ``logits`` [N,K],
and the input gradients ``grad_ce`` (of cross-entropy, summed over the batch),
``grad_logit`` (of sum_n z[n, y_n]) and ``grad_margin`` (of
sum_n z[n, y_n] - max_{j != y_n} z[n, j]), computed in float32 on the CPU.
``fixtures`` regenerates the Rust test fixtures (tests/fixtures) deterministically
and checks them.
"""

import argparse
import copy
import gzip
import json
import math
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

SPEC_VERSION = 1
META_KEY = "xai_audit.arch"

__all__ = [
    "Residual", "GlobalAvgPool2d", "SpecModel", "spec_from_module", "export",
    "check_spec", "build_from_spec", "load", "read_idx", "reference_tensors",
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
# Spec vocabulary (docs/arch-spec.md, version 1)
# --------------------------------------------------------------------------

_SIZE_KEYS = {"kernel_size", "stride", "padding", "dilation", "output_size"}
_PARAM_OPS = {"linear", "conv2d", "batch_norm1d", "batch_norm2d"}
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
    "dropout": ((), {"p": 0.5}),
    "residual": (("body",), {"shortcut": None, "activation": None}),
}
_TOP_KEYS = ("version", "name", "input", "classes", "layers")
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
# nn.Module -> spec
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


def spec_from_module(model, input_shape, mean=None, std=None, classes=None, name=None,
                     input_range=(0.0, 1.0), verify=True):
    """Describe ``model`` as an architecture spec (a JSON-ready dict).

    ``input_shape`` is ``[C, H, W]``; ``mean``/``std`` (C numbers each) the input
    normalization to apply inside the network; ``classes`` the class names;
    ``input_range`` the valid pixel range. The model is run once on a random
    input (in eval mode; training flags are restored) to order the children of
    custom containers, and, with ``verify``, the spec rebuilt in PyTorch must
    reproduce its output. Raises ValueError for anything the spec cannot express.
    """
    shape = [int(s) for s in input_shape]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be [C, H, W] of positive ints, got {input_shape!r}")
    c = shape[0]
    inner_norm = False
    if isinstance(model, SpecModel):      # defaults come from the spec it was built from
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

    spec = {"version": SPEC_VERSION}
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

    # Trace one forward pass: call order and shapes of every module.
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
    modes = {mod: mod.training for mod in model.modules()}
    ref = next((t for t in list(model.parameters()) + list(model.buffers())
                if t.is_floating_point()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None else torch.float32
    gen = torch.Generator().manual_seed(1234)
    x = lo + (hi - lo) * torch.rand([2] + shape, generator=gen)
    xin = x
    if not inner_norm and (mean is not None or std is not None):
        m_ = torch.tensor(inp.get("mean", [0.0] * c)).view(-1, 1, 1)
        s_ = torch.tensor(inp.get("std", [1.0] * c)).view(-1, 1, 1)
        xin = (x - m_) / s_
    try:
        model.eval()
        with torch.no_grad():
            y = model(xin.to(device=device, dtype=dtype))
    except Exception as e:
        ctx = _WalkCtx(trace, False)
        ctx.order = order
        _walk(model, "", ctx)             # an unsupported module explains it best
        raise ValueError(f"running the model on an input of shape {[2] + shape} failed: "
                         f"{type(e).__name__}: {e}") from e
    finally:
        for h in hooks:
            h.remove()
        for mod, mode in modes.items():
            mod.train(mode)
    ctx = _WalkCtx(trace, False)
    ctx.order = order
    spec["layers"] = _walk(model, "", ctx)

    if not isinstance(y, torch.Tensor) or y.dim() != 2:
        raise ValueError(f"the model must return logits [N, classes], got "
                         f"{_shape_of(y) if not isinstance(y, torch.Tensor) else tuple(y.shape)}")
    if classes is not None and len(spec["classes"]) != y.shape[1]:
        raise ValueError(f"{len(spec['classes'])} class names for {y.shape[1]} outputs")

    if verify:
        sd = model.state_dict()
        built = build_from_spec(spec)
        missing = [k for k in built.state_dict() if k not in sd]
        if missing:
            raise ValueError(f"the spec needs tensors the model does not have: {missing[:8]}")
        built.load_state_dict({k: _as_f32(sd[k]) for k in built.state_dict()}, strict=True)
        with torch.no_grad():
            yb = built(x)
        ym = y.detach().float().cpu()
        tol = 1e-4 if dtype in (torch.float32, torch.float64) else 3e-2
        scale = 1.0 + float(ym.abs().max())
        if yb.shape != ym.shape or not bool(((yb - ym).abs() <= tol * scale).all()):
            diff = float((yb - ym).abs().max()) if yb.shape == ym.shape else float("nan")
            raise ValueError(
                "the spec does not reproduce the model's output (max abs diff "
                f"{diff:.3g}, shapes {tuple(yb.shape)} vs {tuple(ym.shape)}): a forward() "
                "probably does something that is not a module call (functional ops, "
                "reused modules, branches). Use nn.Sequential / Residual, nn.Flatten, "
                "and activation modules instead of torch.* calls")
    return spec


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


def _check_layer(layer, where):
    if not isinstance(layer, dict) or "op" not in layer:
        raise ValueError(f"{where}: a layer must be an object with an 'op'")
    op = layer["op"]
    if op not in _OPS:
        raise ValueError(f"{where}: unknown op {op!r}")
    required, defaults = _OPS[op]
    allowed = {"op", *required, *defaults}
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
    for key in _SIZE_KEYS & set(layer):
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


def check_spec(spec):
    """Validate a spec (version, keys, ops); raises ValueError naming the problem."""
    _check_keys(spec, _TOP_KEYS, "spec")
    for key in ("version", "input", "layers"):
        if key not in spec:
            raise ValueError(f"spec: missing {key!r}")
    v = spec["version"]
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"spec: bad version {v!r}")
    if v > SPEC_VERSION:
        raise ValueError(f"spec version {v} is newer than this script understands "
                         f"(version {SPEC_VERSION}); update export_pytorch.py")
    inp = spec["input"]
    _check_keys(inp, _INPUT_KEYS, "input")
    if "shape" not in inp:
        raise ValueError("input: missing 'shape'")
    shape = inp["shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(
            isinstance(s, int) and s > 0 for s in shape)):
        raise ValueError(f"input.shape must be [C, H, W], got {shape!r}")
    for key in ("mean", "std"):
        if key in inp and (not isinstance(inp[key], list) or len(inp[key]) != shape[0]):
            raise ValueError(f"input.{key} must have {shape[0]} numbers")
    if "range" in inp and (not isinstance(inp["range"], list) or len(inp["range"]) != 2
                           or not inp["range"][0] < inp["range"][1]):
        raise ValueError(f"input.range must be [lo, hi] with lo < hi, got {inp['range']!r}")
    if "classes" in spec and not (isinstance(spec["classes"], list)
                                  and all(isinstance(c, str) for c in spec["classes"])):
        raise ValueError("classes must be a list of strings")
    if not isinstance(spec["layers"], list):
        raise ValueError("layers must be a list")
    for i, layer in enumerate(spec["layers"]):
        _check_layer(layer, f"layers[{i}]")


class _Node(nn.Module):
    """A container that only reproduces a state_dict prefix; never called."""

    def forward(self, *args):  # pragma: no cover
        raise RuntimeError("_Node is a naming container and is not callable")


class SpecModel(nn.Module):
    """The network an architecture spec describes.

    Parametric layers live in a module tree whose attribute paths are the spec's
    ``param`` prefixes (so ``state_dict`` names match the exporting model's);
    forward runs the spec's layers in order after ``(x - mean) / std``.
    """

    def __init__(self, spec):
        super().__init__()
        check_spec(spec)
        self.spec = copy.deepcopy(spec)
        self._by_prefix = {}
        self._plan = [self._make(l, f"layers[{i}]") for i, l in enumerate(spec["layers"])]
        for prefix, (_, module) in self._by_prefix.items():       # plan order
            self._attach(prefix, module)
        del self._by_prefix
        inp = spec["input"]
        c = inp["shape"][0]
        self.has_norm = "mean" in inp or "std" in inp
        mean = torch.tensor([float(v) for v in inp.get("mean", [0.0] * c)]).view(-1, 1, 1)
        std = torch.tensor([float(v) for v in inp.get("std", [1.0] * c)]).view(-1, 1, 1)
        self.register_buffer("input_mean", mean, persistent=False)
        self.register_buffer("input_std", std, persistent=False)

    def _make(self, layer, where):
        op = layer["op"]
        g = layer.get
        if op == "residual":
            body = nn.Sequential(*[self._make(l, f"{where}.body[{i}]")
                                   for i, l in enumerate(layer["body"])])
            sc = layer.get("shortcut")
            sc = nn.Sequential(*[self._make(l, f"{where}.shortcut[{i}]")
                                 for i, l in enumerate(sc)]) if sc else None
            act = layer.get("activation")
            act = self._make(act, f"{where}.activation") if act is not None else None
            return Residual(body, sc, act)
        if op == "linear":
            m = nn.Linear(layer["in_features"], layer["out_features"], bias=g("bias", True))
        elif op == "conv2d":
            m = nn.Conv2d(layer["in_channels"], layer["out_channels"],
                          _pair(layer["kernel_size"]), stride=_pair(g("stride", 1)),
                          padding=_pair(g("padding", 0)), dilation=_pair(g("dilation", 1)),
                          groups=g("groups", 1), bias=g("bias", True))
        elif op in ("batch_norm1d", "batch_norm2d"):
            cls = nn.BatchNorm1d if op == "batch_norm1d" else nn.BatchNorm2d
            m = cls(layer["num_features"], eps=g("eps", 1e-5), affine=g("affine", True))
        elif op == "max_pool2d":
            k = _pair(layer["kernel_size"])
            m = nn.MaxPool2d(k, stride=_pair(g("stride", k)), padding=_pair(g("padding", 0)),
                             dilation=_pair(g("dilation", 1)), ceil_mode=g("ceil_mode", False))
        elif op == "avg_pool2d":
            k = _pair(layer["kernel_size"])
            m = nn.AvgPool2d(k, stride=_pair(g("stride", k)), padding=_pair(g("padding", 0)),
                             ceil_mode=g("ceil_mode", False),
                             count_include_pad=g("count_include_pad", True))
        elif op == "adaptive_avg_pool2d":
            m = nn.AdaptiveAvgPool2d(_pair(layer["output_size"]))
        elif op == "global_avg_pool2d":
            m = GlobalAvgPool2d()
        elif op == "relu":
            m = nn.ReLU()
        elif op == "leaky_relu":
            m = nn.LeakyReLU(g("negative_slope", 0.01))
        elif op == "gelu":
            m = nn.GELU(approximate=g("approximate", "none"))
        elif op == "silu":
            m = nn.SiLU()
        elif op == "tanh":
            m = nn.Tanh()
        elif op == "sigmoid":
            m = nn.Sigmoid()
        elif op == "flatten":
            m = nn.Flatten()
        elif op == "dropout":
            m = nn.Dropout(g("p", 0.5))
        else:  # unreachable after check_spec
            raise ValueError(f"{where}: unknown op {op!r}")
        if op in _PARAM_OPS:
            prefix = layer["param"]
            if prefix in self._by_prefix:
                prev_layer, prev = self._by_prefix[prefix]
                if prev_layer != layer:
                    raise ValueError(f"{where}: param {prefix!r} is used by two different layers")
                return prev                       # the same weights, shared
            m._xai_audit_param = prefix
            self._by_prefix[prefix] = (layer, m)
        return m

    def _attach(self, prefix, module):
        parent = self
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


def build_from_spec(spec, weights=None):
    """Build the eval-mode torch model ``spec`` describes; with ``weights`` (a
    dict of tensors keyed by state_dict name) load them, cast to float32,
    strictly. ``num_batches_tracked`` may be absent."""
    model = SpecModel(spec)
    if weights is not None:
        weights = {k: _as_f32(v) for k, v in weights.items()}
        for k in model.state_dict():
            if k.endswith(".num_batches_tracked") and k not in weights:
                weights[k] = torch.tensor(0, dtype=torch.long)
        try:
            model.load_state_dict(weights, strict=True)
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
        spec = spec_from_module(model, name=name.replace("_", "-"), **spec_kwargs)
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
        again = spec_from_module(rebuilt, meta_spec["input"]["shape"])
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
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ValueError as e:
        raise SystemExit(f"error: {e}")


if __name__ == "__main__":
    main()
