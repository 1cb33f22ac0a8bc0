"""The inputs `xai-audit bench --data PATH --limit N` attacks, read in Python
the way src/data/ reads them, so a side-by-side benchmark attacks the same
pixels with the same labels. `inputs_digest` is the SHA-256 `xai-audit bench`
prints (`inputs sha256 ...`): equal digests mean identical inputs.

What is mirrored (src/data/mod.rs `load_with_notes`):
- a folder holding one `*-images-idx3-ubyte[.gz]` file: that IDX pair;
  an IDX images file: it and its `labels-idx1` file; the first N items, bytes
  / 255, the grey plane repeated for a 3-channel model;
- any other folder: an image folder (src/data/folder/): class subfolders
  sorted byte-wise, matched by name to the spec's `classes` (else numbered in
  sorted order), files found recursively in `os.walk` order sorted as
  strings, hidden entries skipped; with a limit, the class-interleaved order
  of src/data/subset.rs `stratified_order`; PNG/BMP/JPEG decoded with PIL and
  converted as src/data/folder/decode.rs does (8-bit samples / 255, PIL's
  fixed-point luma for grey models, alpha dropped). JPEG decoders can differ
  by a grey level from the `image` crate's: the digest says when they do.

No resizing: the data must have the model's input size, as for `bench`.
"""

import gzip
import hashlib
import os
import struct

import numpy as np

SUPPORTED = (".png", ".jpg", ".jpeg", ".bmp")
UNSUPPORTED = (".ppm", ".pgm", ".tif", ".tiff", ".webp")
SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets",
                      "mnist-sample", "sample-images-idx3-ubyte.gz")


def load_inputs(path, spec, limit):
    """`(x, y)`: float32 `[N, C, H, W]` pixels in [0, 1] and int64 labels, as
    `xai-audit bench --data path --limit limit` reads them for the model `spec`
    describes (`path` None: the shipped 1,000 digits)."""
    c, h, w = spec["input"]["shape"]
    if path is None:
        path = SAMPLE
    if os.path.isdir(path):
        images = _idx_in_dir(path)
        if images is None:
            x, y = _load_folder(path, c, spec.get("classes") or [], limit, _outputs(spec))
        else:
            x, y = _load_idx(images, c, limit)
    else:
        x, y = _load_idx(path, c, limit)
    if x.shape[2:] != (h, w):
        raise SystemExit(f"{path}: images are {x.shape[2]}x{x.shape[3]} (HxW) but the model "
                         f"expects {h}x{w}")
    if len(y) and int(y.max()) >= _outputs(spec):
        raise SystemExit(f"{path}: label {int(y.max())} beyond the model's classes")
    return x, y


def inputs_digest(x, y):
    """SHA-256 over the pixels as little-endian f32 then the labels as
    little-endian u32: src/bench/mod.rs `inputs_digest`."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x, dtype="<f4").tobytes())
    h.update(np.ascontiguousarray(y, dtype="<u4").tobytes())
    return h.hexdigest()


def _outputs(spec):
    # Version 1 lists layers, version 2 nodes: both end in the classifier.
    for layer in reversed(spec.get("nodes") or spec["layers"]):
        if layer["op"] == "linear":
            out = int(layer["out_features"])
            return 2 if out == 1 else out
    return len(spec.get("classes") or []) or 10 ** 9


# ---------------------------------------------------------------- IDX pairs

def _idx_in_dir(path):
    found = sorted(
        os.path.join(path, name) for name in os.listdir(path)
        if not name.startswith(".")
        and (name.endswith("-images-idx3-ubyte") or name.endswith("-images-idx3-ubyte.gz"))
        and os.path.isfile(os.path.join(path, name)))
    if len(found) > 1:
        raise SystemExit(f"{path}: several IDX images files ({', '.join(found)})")
    return found[0] if found else None


def _labels_path(images):
    name = os.path.basename(images)
    if "images-idx3" not in name:
        raise SystemExit(f"{images}: not an IDX images file (*-images-idx3-ubyte[.gz])")
    base = name.replace("images-idx3", "labels-idx1")
    other = base[:-3] if base.endswith(".gz") else base + ".gz"
    for candidate in (base, other):
        full = os.path.join(os.path.dirname(images), candidate)
        if os.path.isfile(full):
            return full
    raise SystemExit(f"{images}: no labels file beside it")


def _read_idx(path, magic):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    ndim = 3 if magic == 2051 else 1
    head = struct.unpack(f">{1 + ndim}I", data[:4 + 4 * ndim])
    if head[0] != magic:
        raise SystemExit(f"{path}: IDX magic {head[0]}, expected {magic}")
    dims = head[1:]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim, count=int(np.prod(dims)))
    return body.reshape(dims)


def _load_idx(images, c, limit):
    pixels = _read_idx(images, 2051)
    labels = _read_idx(_labels_path(images), 2049)
    n = len(pixels) if limit is None else min(limit, len(pixels))
    plane = pixels[:n].astype(np.float32) / np.float32(255.0)
    x = np.repeat(plane[:, None], c, axis=1)
    return np.ascontiguousarray(x), labels[:n].astype(np.int64)


# ------------------------------------------------------------- image folders

def _key(name):
    return os.fsencode(name)


def _load_folder(root, c, classes, limit, outputs):
    folders = sorted((n for n in os.listdir(root)
                      if not n.startswith(".") and os.path.isdir(os.path.join(root, n))),
                     key=_key)
    if not folders:
        raise SystemExit(f"{root}: no class folders")
    if classes:
        unknown = [f for f in folders if f not in classes]
        if unknown:
            raise SystemExit(f"{root}: class folders {unknown} are not classes of the model")
        labels = [classes.index(f) for f in folders]
    else:
        if len(folders) > outputs:
            raise SystemExit(f"{root}: {len(folders)} class folders for {outputs} classes")
        labels = list(range(len(folders)))
    files = [_class_files(os.path.join(root, f)) for f in folders]
    empty = [f for f, fs in zip(folders, files) if not fs]
    if empty:
        raise SystemExit(f"{root}: no image in class folders {empty}")
    sizes = [len(fs) for fs in files]
    if limit is not None and limit < sum(sizes):
        items = [(files[k][i], labels[k]) for k, i in stratified_order(sizes, limit)]
    else:
        items = [(f, labels[k]) for k, fs in enumerate(files) for f in fs]
    planes = [_decode(path, c) for path, _ in items]
    shapes = {p.shape[1:] for p in planes}
    if len(shapes) > 1:
        raise SystemExit(f"{root}: images of several sizes {sorted(shapes)}")
    return np.stack(planes), np.array([label for _, label in items], dtype=np.int64)


def _class_files(folder):
    groups = []

    def walk(path, key, depth):
        if depth > 64:
            raise SystemExit(f"{path}: nested more than 64 folders deep")
        files, subdirs = [], []
        for name in os.listdir(path):
            if name.startswith("."):
                continue
            full = os.path.join(path, name)
            lower = name.lower()
            if os.path.isdir(full):
                subdirs.append((name, full))
            elif lower.endswith(SUPPORTED):
                files.append((_key(name), full))
            elif lower.endswith(UNSUPPORTED):
                raise SystemExit(f"{full}: image format not read by xai-audit")
        files.sort()
        for name, full in subdirs:
            walk(full, key + b"/" + _key(name), depth + 1)
        groups.append((key, [f for _, f in files]))

    walk(folder, b"", 0)
    groups.sort(key=lambda g: g[0])
    return [f for _, fs in groups for f in fs]


def stratified_order(sizes, n):
    """src/data/subset.rs `stratified_order`: the first `n` items of the
    class-interleaved order, as `(class, position within the class)`."""
    total = sum(sizes)
    n = min(n, total)
    taken = [0] * len(sizes)
    order = []
    for t in range(1, n + 1):
        best = None
        for k, size in enumerate(sizes):
            j = taken[k] + 1
            if j > size or (j - 1) * total >= t * size:
                continue
            if best is None or j * sizes[best[0]] < best[1] * size:
                best = (k, j)
        k = best[0]
        order.append((k, taken[k]))
        taken[k] += 1
    return order


def _decode(path, c):
    """`c` planes in [0, 1]: src/data/folder/decode.rs `image_to_chw`."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif im.mode == "1":
            im = im.convert("L")
        elif im.mode == "CMYK":
            im = im.convert("RGB")
        mode = im.mode
        a = np.asarray(im)
    if mode in ("L", "LA", "RGB", "RGBA"):
        unit = np.float32(255.0)
    elif mode.startswith("I;16"):
        unit = np.float32(65535.0)
    else:
        raise SystemExit(f"{path}: PIL mode {mode} is not mirrored here")
    if a.ndim == 2:
        a = a[:, :, None]
    rgb = a.shape[2] >= 3
    if rgb and c == 1:
        r, g, b = (a[:, :, i].astype(np.uint32) for i in range(3))
        if unit == 255.0:
            grey = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.float32) / unit
        else:
            rf, gf, bf = (v.astype(np.float32) for v in (r, g, b))
            grey = (np.float32(0.299) * rf + np.float32(0.587) * gf
                    + np.float32(0.114) * bf) / unit
        return grey[None]
    if rgb:
        return np.ascontiguousarray(a[:, :, :3].astype(np.float32).transpose(2, 0, 1) / unit)
    grey = a[:, :, 0].astype(np.float32) / unit
    return np.repeat(grey[None], c, axis=0)
