#!/usr/bin/env python3
"""Convert a PyTorch ViT/MAE checkpoint into a safetensors file that `rekindle` loads.

Accepted inputs:

* a facebookresearch/mae pre-training checkpoint (encoder + decoder, no head),
* a facebookresearch/mae fine-tuning checkpoint (encoder + head, maybe ``fc_norm``),
* a timm ``VisionTransformer`` state_dict or timm training checkpoint,
* a safetensors file with the same names (re-export: rename, change dtype, drop parts).

The output holds exactly the tensor names and PyTorch shapes of rekindle's parameter table
(``crates/model/src/params.rs``), plus the ``pos_embed`` / ``decoder_pos_embed`` tables, which
rekindle ignores because it always uses fixed 2-D sin-cos position tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import zipfile

CONVERTED_BY = "rekindle convert_checkpoint.py"

# Mirror of ModelConfig::preset in crates/model/src/config.rs.
PRESETS = {
    "vit-base-16": dict(image_size=224, channels=3, patch=16, dim=768, depth=12, heads=12, mlp_ratio=4,
                        decoder_dim=512, decoder_depth=8, decoder_heads=16, classes=1000),
    "vit-small-16": dict(image_size=224, channels=3, patch=16, dim=384, depth=12, heads=6, mlp_ratio=4,
                         decoder_dim=256, decoder_depth=8, decoder_heads=8, classes=1000),
    "vit-tiny-16": dict(image_size=224, channels=3, patch=16, dim=192, depth=12, heads=3, mlp_ratio=4,
                        decoder_dim=128, decoder_depth=8, decoder_heads=4, classes=1000),
    "vit-tiny-4-32": dict(image_size=32, channels=3, patch=4, dim=192, depth=12, heads=3, mlp_ratio=4,
                          decoder_dim=128, decoder_depth=2, decoder_heads=4, classes=10),
    "vit-micro-4-28": dict(image_size=28, channels=1, patch=4, dim=64, depth=4, heads=4, mlp_ratio=4,
                           decoder_dim=64, decoder_depth=2, decoder_heads=4, classes=10),
}
CONFIG_KEYS = ["image_size", "channels", "patch", "dim", "depth", "heads", "mlp_ratio",
               "decoder_dim", "decoder_depth", "decoder_heads", "classes"]

# Entries of a training checkpoint that may hold the model's state dict, in the order tried.
CONTAINER_KEYS = ("model", "state_dict", "model_state", "model_state_dict", "module", "net")
# Prefixes stripped from every name that has them (DDP, torch.compile).
STRIP_PREFIXES = ("module.", "_orig_mod.")

_BLOCK = r"(?:norm1|norm2)\.(?:weight|bias)|attn\.(?:qkv|proj)\.(?:weight|bias)|mlp\.(?:fc1|fc2)\.(?:weight|bias)"
ENCODER_RE = re.compile(rf"^(?:cls_token|patch_embed\.proj\.(?:weight|bias)|blocks\.\d+\.(?:{_BLOCK})|norm\.(?:weight|bias))$")
DECODER_RE = re.compile(rf"^(?:mask_token|decoder_embed\.(?:weight|bias)|decoder_blocks\.\d+\.(?:{_BLOCK})"
                        rf"|decoder_norm\.(?:weight|bias)|decoder_pred\.(?:weight|bias))$")
HEAD_RE = re.compile(r"^head\.(?:weight|bias)$")
FIXED_TABLES = ("pos_embed", "decoder_pos_embed")
FC_NORM = ("fc_norm.weight", "fc_norm.bias")

# Why a known-but-unsupported tensor cannot be carried over (matched against the name).
UNSUPPORTED_HINTS = [
    (r"^reg_token$", "register tokens (timm *_reg models); rekindle's ViT has only the CLS token"),
    (r"^dist_token$|^head_dist\.", "DeiT distillation token/head; rekindle has one CLS token and one head"),
    (r"^norm_pre\.", "a LayerNorm before the blocks (timm pre_norm=True, CLIP-style); rekindle has none"),
    (r"\.ls[12]\.", "LayerScale (timm init_values, DeiT-III style); rekindle blocks have no layer scale"),
    (r"\.attn\.(?:q_norm|k_norm)\.", "QK-norm in attention; rekindle attention has none"),
    (r"\.attn\.(?:q_bias|v_bias|k_bias)$|\.attn\.(?:q|k|v)\.", "separate q/k/v projections or biases; "
     "rekindle expects one fused attn.qkv weight [3D, D] and bias [3D]"),
    (r"\.attn\.norm\.|\.mlp\.norm\.", "a norm inside attention/MLP (timm scale_attn_norm/scale_mlp_norm)"),
    (r"\.mlp\.(?:fc1_g|fc1_x|w12|w3)\.?", "a gated (SwiGLU) MLP; rekindle's MLP is fc1 -> GELU -> fc2"),
    (r"^attn_pool\.", "attention-pooling head (timm global_pool='map'); rekindle mean-pools patch tokens"),
    (r"^patch_embed\.norm\.", "a LayerNorm after the patch embedding; rekindle has none"),
    (r"relative_position|rel_pos", "relative position bias; rekindle uses only the fixed sin-cos table"),
    (r"^head\.", "a nested or non-linear head; rekindle's head is one Linear(D, K) named head.weight/head.bias"),
    (r"^pre_logits\.|^head\.fc\.", "a pre-logits layer; rekindle's head is one Linear(D, K)"),
]

HELP_EPILOG = """\
examples:
  # MAE pre-training checkpoint (encoder + decoder) -> rekindle, f32
  python scripts/convert_checkpoint.py mae_pretrain_vit_base.pth mae_vit_base.safetensors

  # timm classifier, keep only the encoder to start a new task with a fresh head
  python scripts/convert_checkpoint.py vit_small.pth vit_small.safetensors --drop-head

  # MAE fine-tuned checkpoint trained with --global_pool (has fc_norm, no norm)
  python scripts/convert_checkpoint.py mae_finetuned_vit_base.pth ft.safetensors --allow-fc-norm-drop

  # re-export an existing safetensors file as bf16 without the decoder
  python scripts/convert_checkpoint.py in.safetensors enc_bf16.safetensors --dtype bf16 --drop-decoder

  # a training checkpoint that pickles argparse args, numpy scalars etc. (trusted file only!)
  python scripts/convert_checkpoint.py checkpoint-399.pth out.safetensors --unsafe-pickle

what is kept:
  encoder  cls_token, patch_embed.proj.*, blocks.{i}.*, norm.*           (required)
  decoder  decoder_embed.*, mask_token, decoder_blocks.{i}.*, decoder_norm.*, decoder_pred.*
  head     head.weight [K, D], head.bias [K]
  tables   pos_embed, decoder_pos_embed (kept, but rekindle ignores them and always uses a fixed
           2-D sin-cos table; a WARNING is printed when the source table is not that table)
  Non-tensor entries (epoch, args, optimizer state, ...) are dropped. Names are taken after
  stripping 'module.' (DDP) and '_orig_mod.' (torch.compile) prefixes. Any other tensor
  (reg_token, dist_token, norm_pre, LayerScale, ...) is refused with an error naming it.

The summary ends with the `rekindle --preset ... --set key=value` flags that build a matching
model. The number of attention heads is not stored in the weights (attn.qkv is [3D, D] for any
head count), so check `heads` / `decoder_heads` against the source model's configuration.
"""


class ConvertError(Exception):
    """A problem with the input; printed as `error: ...` with exit status 1."""


def warn(msg: str) -> None:
    print(f"WARNING: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def is_safetensors(path: str) -> bool:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    # A plausible JSON header length counts even when it runs past the end: a truncated file then
    # gets safetensors' own error instead of "not a checkpoint".
    return head[8:9] == b"{" and 2 <= n <= max(size - 8, 100 * 2**20)


def load_safetensors(path: str):
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad input
        raise ConvertError(f"{path}: not a valid safetensors file: {e}") from None
    return tensors, metadata


def _looks_like_torch_file(path: str) -> bool:
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as f:
        first = f.read(2)
    # Legacy (pre-1.6) torch.save files are a pickle stream: protocol opcode 0x80 then version.
    return len(first) == 2 and first[0] == 0x80 and 2 <= first[1] <= 5


def load_torch(path: str, unsafe_pickle: bool):
    if not _looks_like_torch_file(path):
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                raise ConvertError(f"{path}: truncated or corrupt torch.save archive (the zip directory is missing "
                                   "or unreadable)")
        raise ConvertError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle "
                           "stream) and not a safetensors file")
    if zipfile.is_zipfile(path):
        # torch.load does not verify the archive's CRCs, so flipped bytes in tensor data would pass
        # silently; one streaming pass over the file catches them.
        try:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
        except Exception as e:  # noqa: BLE001
            raise ConvertError(f"{path}: corrupt torch.save archive ({type(e).__name__}: {e})") from None
        if bad is not None:
            raise ConvertError(f"{path}: corrupt torch.save archive: CRC mismatch in member {bad}")
    import pickle

    import torch

    try:
        # argparse.Namespace (the `args` entry of MAE/timm training checkpoints) only carries
        # attributes, so allowing it keeps weights_only loading safe.
        safe = getattr(torch.serialization, "safe_globals", None)
        if safe is not None:
            with safe([argparse.Namespace]):
                return torch.load(path, map_location="cpu", weights_only=True)
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Weights only load failed" not in msg:
            raise ConvertError(f"{path}: could not unpickle the checkpoint: {msg.splitlines()[0]}") from None
        m = re.search(r"Unsupported global: GLOBAL ([^\s]+)", msg) or re.search(r"(Unsupported [^\n.]*)", msg)
        what = f" (it references {m.group(1)})" if m else ""
        if not unsafe_pickle:
            raise ConvertError(
                f"{path}: the safe loader (torch.load weights_only=True) refused this file{what}. It holds Python "
                "objects besides tensors, which full unpickling would construct by running code named in the "
                "file. If you trust where the file came from, rerun with --unsafe-pickle.") from None
        print(f"note: weights_only load refused the file{what}; loading with weights_only=False (--unsafe-pickle)")
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e2:  # noqa: BLE001
            hint = (" (the pickled classes must be importable: run from the training repository or add it to "
                    "PYTHONPATH)" if isinstance(e2, (ModuleNotFoundError, AttributeError)) else "")
            raise ConvertError(f"{path}: could not load even with --unsafe-pickle: {type(e2).__name__}: {e2}{hint}") from None
    except Exception as e:  # noqa: BLE001 - truncated zip, bad records, ...
        first = str(e).splitlines()[0] if str(e) else ""
        raise ConvertError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {first})") from None


def _is_tensor(v) -> bool:
    import torch

    return isinstance(v, torch.Tensor)


def _strip(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in STRIP_PREFIXES:
            if name.startswith(p):
                name, changed = name[len(p):], True
    return name


def _looks_like_state_dict(d) -> bool:
    if not isinstance(d, dict):
        return False
    names = {_strip(str(k)) for k, v in d.items() if _is_tensor(v)}
    return bool(names & {"cls_token", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "pos_embed",
                         "model.cls_token", "model.patch_embed.proj.weight"})


def find_state_dict(obj, key: str | None):
    """Returns (state dict, where it was found, ignored sibling entries)."""
    if hasattr(obj, "state_dict") and callable(obj.state_dict) and not isinstance(obj, dict):
        obj = obj.state_dict()  # a pickled nn.Module (only reachable with --unsafe-pickle)
    if not isinstance(obj, dict):
        raise ConvertError(f"the checkpoint holds a {type(obj).__name__}, not a dict of tensors")
    if key is not None:
        cur, where = obj, []
        for part in key.split("."):
            if not isinstance(cur, dict) or part not in cur:
                have = ", ".join(map(str, cur.keys())) if isinstance(cur, dict) else type(cur).__name__
                raise ConvertError(f"--key {key}: no entry '{part}' at '{'.'.join(where) or 'top level'}' "
                                   f"(entries there: {have})")
            cur, where = cur[part], where + [part]
        if hasattr(cur, "state_dict") and callable(cur.state_dict) and not isinstance(cur, dict):
            cur = cur.state_dict()
        if not _looks_like_state_dict(cur):
            raise ConvertError(f"--key {key}: that entry is not a ViT state dict")
        return cur, key, []
    path, ignored = [], []
    for _ in range(4):
        if _looks_like_state_dict(obj):
            return obj, ".".join(path) or "top level", ignored
        nxt = None
        for k in CONTAINER_KEYS:
            v = obj.get(k)
            if hasattr(v, "state_dict") and callable(v.state_dict) and not isinstance(v, dict):
                v = v.state_dict()
            if isinstance(v, dict):
                nxt = (k, v)
                break
        if nxt is None:
            break
        ignored += [f"{'.'.join(path + [str(k)])}" for k in obj.keys() if k != nxt[0]]
        path.append(nxt[0])
        obj = nxt[1]
    keys = list(obj.keys())[:12]
    raise ConvertError("no ViT state dict found (looked for cls_token / patch_embed.proj.weight at the top level and "
                       f"under {', '.join(CONTAINER_KEYS)}); entries at '{'.'.join(path) or 'top level'}': "
                       f"{', '.join(map(str, keys)) or '(none)'}{' ...' if len(obj) > 12 else ''}. "
                       "Use --key to name the entry that holds the state dict.")


# --------------------------------------------------------------------------------------------
# Position tables
# --------------------------------------------------------------------------------------------


def sincos_2d(dim: int, grid: int, cls_row: bool = True):
    """MAE's fixed 2-D sin-cos table (float64 numpy), as crates/model/src/pos_embed.rs builds it."""
    import numpy as np

    def one_d(d, pos):
        quarter = d // 2
        omega = 1.0 / (10000.0 ** (np.arange(quarter, dtype=np.float64) / quarter))
        ang = pos.astype(np.float64)[:, None] * omega[None, :]
        return np.concatenate([np.sin(ang), np.cos(ang)], axis=1)

    k = np.arange(grid * grid)
    table = np.concatenate([one_d(dim // 2, k % grid), one_d(dim // 2, k // grid)], axis=1)
    if cls_row:
        table = np.concatenate([np.zeros((1, dim)), table], axis=0)
    return table


def inspect_pos_table(name: str, t, width: int):
    """Returns (grid or None, has_cls_row, matches_sincos or None, max_abs_diff or None, note)."""
    import numpy as np
    import torch

    shape = list(t.shape)
    if len(shape) == 3 and shape[0] == 1:
        n, d = shape[1], shape[2]
    elif len(shape) == 2:
        n, d = shape
    else:
        return None, False, None, None, f"{name} has shape {shape}, not [1, N, D]"
    if d != width:
        raise ConvertError(f"{name} has width {d} but the model width is {width} (shape {shape})")
    grid, cls_row = None, True
    g = math.isqrt(max(n - 1, 0))
    if g * g == n - 1 and g > 0:
        grid = g
    else:
        g = math.isqrt(n)
        if g * g == n:
            grid, cls_row = g, False
    if grid is None:
        return None, False, None, None, f"{name} has {n} rows: not 1 + G*G for a square grid"
    if width % 4 != 0:
        return grid, cls_row, None, None, ""
    ref = sincos_2d(width, grid, cls_row)
    got = t.detach().to(torch.float64).reshape(n, d).numpy()
    diff = float(np.max(np.abs(got - ref)))
    tol = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}.get(t.dtype, 1e-4)
    return grid, cls_row, diff <= tol, diff, ""


# --------------------------------------------------------------------------------------------
# Geometry checks
# --------------------------------------------------------------------------------------------


def block_shapes(prefix: str, width: int, hidden: int) -> dict:
    return {
        f"{prefix}.norm1.weight": [width], f"{prefix}.norm1.bias": [width],
        f"{prefix}.attn.qkv.weight": [3 * width, width], f"{prefix}.attn.qkv.bias": [3 * width],
        f"{prefix}.attn.proj.weight": [width, width], f"{prefix}.attn.proj.bias": [width],
        f"{prefix}.norm2.weight": [width], f"{prefix}.norm2.bias": [width],
        f"{prefix}.mlp.fc1.weight": [hidden, width], f"{prefix}.mlp.fc1.bias": [hidden],
        f"{prefix}.mlp.fc2.weight": [width, hidden], f"{prefix}.mlp.fc2.bias": [width],
    }


def _depth(names, prefix: str) -> int:
    idx = {int(m.group(1)) for n in names if (m := re.match(rf"^{re.escape(prefix)}\.(\d+)\.", n))}
    return max(idx) + 1 if idx else 0


def _check(sd: dict, expected: dict, part: str) -> None:
    missing = [n for n in expected if n not in sd]
    if missing:
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        hint = "rekindle needs a part complete or, for the decoder and head, absent"
        if all(n.endswith((".qkv.bias", "proj.bias")) for n in missing):
            hint = ("the source was built without these biases (e.g. timm qkv_bias=False); rekindle always has them. "
                    "Zero biases would be equivalent, but this script does not invent tensors")
        raise ConvertError(f"the {part} is incomplete: missing {', '.join(missing[:6])}{more} ({hint})")
    for n, shape in expected.items():
        got = list(sd[n].shape)
        if got != shape:
            raise ConvertError(f"tensor `{n}` has shape {got}, expected {shape} for this {part}")


def analyse(sd: dict, extra: set) -> dict:
    """Infers the geometry and checks every tensor's shape; raises ConvertError on anything off."""
    names = set(sd)
    if "cls_token" not in sd:
        raise ConvertError("no `cls_token`: rekindle's ViT needs a CLS token (timm class_token=False models are "
                           "not supported)")
    if "patch_embed.proj.weight" not in sd:
        raise ConvertError("no `patch_embed.proj.weight`: not a ViT with a convolutional patch embedding")
    cls = sd["cls_token"]
    if cls.dim() != 3 or cls.shape[0] != 1 or cls.shape[1] != 1:
        raise ConvertError(f"`cls_token` has shape {list(cls.shape)}, expected [1, 1, D]")
    d = int(cls.shape[2])
    pw = sd["patch_embed.proj.weight"]
    if pw.dim() != 4 or pw.shape[2] != pw.shape[3]:
        raise ConvertError(f"`patch_embed.proj.weight` has shape {list(pw.shape)}, expected [D, C, p, p] with a "
                           "square patch")
    channels, patch = int(pw.shape[1]), int(pw.shape[2])
    depth = _depth(names, "blocks")
    if depth == 0:
        raise ConvertError("no encoder blocks (`blocks.0.*`) found")
    if "blocks.0.mlp.fc1.weight" not in sd:
        raise ConvertError("missing `blocks.0.mlp.fc1.weight`")
    hidden = int(sd["blocks.0.mlp.fc1.weight"].shape[0])
    if hidden % d != 0:
        raise ConvertError(f"MLP width {hidden} is not an integer multiple of the model width {d} "
                           f"(mlp_ratio {hidden / d:g}); rekindle's mlp_ratio is an integer")
    mlp_ratio = hidden // d
    if d % 4 != 0:
        raise ConvertError(f"model width {d} is not a multiple of 4, which rekindle's 2-D sin-cos table needs")

    enc = {"cls_token": [1, 1, d], "patch_embed.proj.weight": [d, channels, patch, patch], "patch_embed.proj.bias": [d]}
    for i in range(depth):
        enc.update(block_shapes(f"blocks.{i}", d, hidden))
    enc.update({"norm.weight": [d], "norm.bias": [d]})
    _check(sd, enc, "encoder")

    info = dict(dim=d, depth=depth, channels=channels, patch=patch, mlp_ratio=mlp_ratio, hidden=hidden,
                encoder=list(enc), decoder=[], head=[], decoder_dim=None, decoder_depth=None, classes=None)

    dec_names = [n for n in names if DECODER_RE.match(n)]
    if dec_names:
        if "decoder_embed.weight" not in sd:
            raise ConvertError("the decoder is incomplete: missing decoder_embed.weight")
        dd = int(sd["decoder_embed.weight"].shape[0])
        ddepth = _depth(names, "decoder_blocks")
        if ddepth == 0:
            raise ConvertError("the decoder has no blocks (`decoder_blocks.0.*`); rekindle needs decoder_depth >= 1")
        dhidden = int(sd["decoder_blocks.0.mlp.fc1.weight"].shape[0]) if "decoder_blocks.0.mlp.fc1.weight" in sd else dd * mlp_ratio
        if dhidden != dd * mlp_ratio:
            raise ConvertError(f"decoder MLP width {dhidden} is not {mlp_ratio} x decoder width {dd}; rekindle uses one "
                               "mlp_ratio for encoder and decoder")
        if dd % 4 != 0:
            raise ConvertError(f"decoder width {dd} is not a multiple of 4, which rekindle's sin-cos table needs")
        dec = {"decoder_embed.weight": [dd, d], "decoder_embed.bias": [dd], "mask_token": [1, 1, dd]}
        for i in range(ddepth):
            dec.update(block_shapes(f"decoder_blocks.{i}", dd, dhidden))
        dec.update({"decoder_norm.weight": [dd], "decoder_norm.bias": [dd],
                    "decoder_pred.weight": [patch * patch * channels, dd], "decoder_pred.bias": [patch * patch * channels]})
        _check(sd, dec, "decoder")
        info.update(decoder=list(dec), decoder_dim=dd, decoder_depth=ddepth)

    if "head.weight" in sd or "head.bias" in sd:
        if "head.weight" not in sd:
            raise ConvertError("the head is incomplete: head.bias without head.weight")
        hw = sd["head.weight"]
        if hw.dim() != 2:
            raise ConvertError(f"`head.weight` has shape {list(hw.shape)}, expected [K, {d}]")
        k = int(hw.shape[0])
        _check(sd, {"head.weight": [k, d], "head.bias": [k]}, "head")
        info.update(head=["head.weight", "head.bias"], classes=k)

    leftover = sorted(n for n in names if n not in set(info["encoder"]) | set(info["decoder"]) | set(info["head"])
                      and n not in FIXED_TABLES and n not in extra)
    if leftover:  # e.g. blocks.12.* beyond a gap, decoder_blocks with holes
        raise ConvertError(f"tensors outside the inferred layout: {', '.join(leftover[:6])}")
    return info


# --------------------------------------------------------------------------------------------
# Preset suggestion
# --------------------------------------------------------------------------------------------


def suggest_flags(geo: dict, known_heads: dict) -> tuple[str, list[str]]:
    """Returns (flags, notes): the preset with the fewest --set overrides that matches `geo`."""
    known = {k: geo[k] for k in ("channels", "patch", "dim", "depth", "mlp_ratio")}
    if geo.get("image_size"):
        known["image_size"] = geo["image_size"]
    if geo["decoder_dim"] is not None:
        known.update(decoder_dim=geo["decoder_dim"], decoder_depth=geo["decoder_depth"])
    if geo["classes"] is not None:
        known["classes"] = geo["classes"]
    known.update({k: v for k, v in known_heads.items() if v})

    best = None
    for name, p in PRESETS.items():
        sets = {k: v for k, v in known.items() if p[k] != v}
        # Head counts must divide the (possibly overridden) widths.
        dim = known["dim"]
        if "heads" not in known and dim % p["heads"] != 0:
            sets["heads"] = None
        ddim = known.get("decoder_dim", p["decoder_dim"])
        if "decoder_heads" not in known and ddim % p["decoder_heads"] != 0:
            sets["decoder_heads"] = None
        score = len(sets) + (10 if None in sets.values() else 0)
        if best is None or score < best[0]:
            best = (score, name, sets)
    _, name, sets = best
    p = PRESETS[name]
    guesses = {"heads": max(geo["dim"] // 64, 1), "decoder_heads": max((geo["decoder_dim"] or p["decoder_dim"]) // 32, 1)}
    parts = [f"--preset {name}"]
    for k in CONFIG_KEYS:
        if k in sets:
            v = sets[k]
            parts.append(f"--set {k}=<{k.upper()}: must divide the width, e.g. {guesses[k]}>" if v is None
                         else f"--set {k}={v}")
    notes = []
    for k, width, usual in (("heads", geo["dim"], "timm/MAE encoders usually use D/64"),
                            ("decoder_heads", geo["decoder_dim"], "MAE decoders use width/32, e.g. 16 at 512")):
        if width is None or known_heads.get(k):
            continue
        if k in sets and sets[k] is None:
            what = f"the preset's {k}={p[k]} does not divide {width}, so give it explicitly"
        else:
            what = f"these flags assume {k}={sets.get(k, p[k])}"
        notes.append(f"{k}: cannot be inferred from the weights (attn.qkv is [3W, W] for any head count); {what} -- "
                     f"check the source model's config ({usual} = {guesses[k]})")
    if not geo.get("image_size"):
        notes.append(f"image_size: no square pos_embed to infer it from; the preset's {p['image_size']} is assumed "
                     "(any multiple of the patch size works, see below)")
    if geo["decoder_dim"] is None:
        notes.append("no decoder in the file: rekindle keeps a freshly initialised decoder from the preset "
                     "(only matters for MAE training)")
    if geo["classes"] is None:
        notes.append(f"no head in the file: add --set classes=K for your task (fresh head; the preset has {p['classes']})")
    return " ".join(parts), notes


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="convert_checkpoint.py",
        description="Convert a facebookresearch/mae or timm VisionTransformer checkpoint (.pth) -- or an existing "
                    ".safetensors file -- into a safetensors file with the tensor names and shapes rekindle loads.",
        epilog=HELP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", metavar="IN", help="checkpoint to convert: .pth/.pt (torch.save) or .safetensors")
    ap.add_argument("output", metavar="OUT", help="safetensors file to write (atomically: temp file + rename)")
    ap.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32",
                    help="storage dtype of the output tensors (default: f32; rekindle converts to f32 on load)")
    ap.add_argument("--drop-head", action="store_true",
                    help="leave out head.weight/head.bias, e.g. to start a new task with a fresh head")
    ap.add_argument("--drop-decoder", action="store_true",
                    help="leave out the MAE decoder (decoder_*, mask_token, decoder_pos_embed)")
    ap.add_argument("--allow-fc-norm-drop", action="store_true",
                    help="accept a global-pool checkpoint with fc_norm (MAE fine-tuning --global_pool, timm "
                         "global_pool='avg'). rekindle applies `norm` to every token BEFORE mean-pooling and has "
                         "no fc_norm: if the file has no `norm`, fc_norm's weights become `norm` (an approximation "
                         "-- LayerNorm before instead of after pooling); otherwise fc_norm is dropped")
    ap.add_argument("--unsafe-pickle", action="store_true",
                    help="if the safe loader (torch.load weights_only=True) refuses the file, load it with "
                         "weights_only=False. Full unpickling can run arbitrary code stored in the file, so use it "
                         "only for files you trust; training checkpoints need it when they pickle objects "
                         "other than tensors and argparse.Namespace (numpy scalars, custom classes)")
    ap.add_argument("--key", metavar="ENTRY",
                    help="take the state dict from this checkpoint entry (dotted path, e.g. state_dict_ema or "
                         "model_ema) instead of auto-detecting model/state_dict/model_state")
    return ap.parse_args(argv)


def convert(args) -> None:
    src, out = args.input, args.output
    if not os.path.exists(src):
        raise ConvertError(f"{src}: no such file")
    if not os.path.isfile(src):
        raise ConvertError(f"{src}: not a regular file")
    if os.path.getsize(src) == 0:
        raise ConvertError(f"{src}: empty file")
    if out.endswith((".pth", ".pt", ".bin", ".ckpt")):
        raise ConvertError(f"output {out} looks like a PyTorch file; the output must be .safetensors "
                           "(arguments are IN OUT)")
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise ConvertError(f"output directory {out_dir} does not exist")

    import torch

    known_heads, meta_image_size = {}, None
    if is_safetensors(src):
        raw, metadata = load_safetensors(src)
        where, ignored = "safetensors file", []
        if "rekindle.model" in metadata:
            try:
                cfg = json.loads(metadata["rekindle.model"])
                known_heads = {"heads": cfg.get("heads"), "decoder_heads": cfg.get("decoder_heads")}
                meta_image_size = cfg.get("image_size")
            except (ValueError, AttributeError):
                pass
    else:
        obj = load_torch(src, args.unsafe_pickle)
        raw, where, ignored = find_state_dict(obj, args.key)

    # Tensors only, names without DDP / torch.compile prefixes.
    sd, dropped_non_tensor, renamed = {}, [], 0
    for k, v in raw.items():
        if not _is_tensor(v):
            dropped_non_tensor.append(str(k))
            continue
        name = _strip(str(k))
        renamed += name != k
        if name in sd:
            raise ConvertError(f"two entries map to `{name}` after stripping prefixes (one is `{k}`)")
        sd[name] = v
    if sd and all(n.startswith("model.") for n in sd):  # Lightning-style wrappers
        sd = {n[len("model."):]: v for n, v in sd.items()}
        renamed += len(sd)

    if "cls_token" not in sd:
        raise ConvertError("no `cls_token`: rekindle's ViT needs a CLS token (timm class_token=False models are "
                           "not supported)" + ("" if sd.keys() & {"patch_embed.proj.weight", "blocks.0.attn.qkv.weight"}
                                               else f"; tensors found: {', '.join(sorted(sd)[:8])}"))

    # fc_norm (global-pool fine-tuning).
    notes, fc_action = [], None
    if any(n in sd for n in FC_NORM):
        has_norm = "norm.weight" in sd
        if not args.allow_fc_norm_drop:
            raise ConvertError(
                "the checkpoint has `fc_norm` (global-pool fine-tuning: MAE --global_pool / timm global_pool='avg'): "
                "LayerNorm applied AFTER mean-pooling the patch tokens"
                + ("" if has_norm else ", with no per-token `norm`")
                + ". rekindle applies `norm` to every token BEFORE mean-pooling and has no fc_norm, so this cannot be "
                "carried over exactly. Rerun with --allow-fc-norm-drop to "
                + ("drop fc_norm" if has_norm else "use fc_norm's weights as `norm` (an approximation)")
                + "; expect to fine-tune (or use --drop-head and train a new head).")
        if has_norm:
            fc_action = "dropped fc_norm.* (the file also has `norm`, which rekindle uses)"
            for n in FC_NORM:
                sd.pop(n, None)
        else:
            if not all(n in sd for n in FC_NORM):
                raise ConvertError("fc_norm is incomplete (need fc_norm.weight and fc_norm.bias)")
            sd["norm.weight"], sd["norm.bias"] = sd.pop("fc_norm.weight"), sd.pop("fc_norm.bias")
            fc_action = ("renamed fc_norm.* -> norm.* (rekindle normalises each token before pooling, the source "
                         "normalised after pooling; head outputs will differ somewhat)")

    # Anything rekindle cannot represent.
    unsupported = [n for n in sd if not (ENCODER_RE.match(n) or DECODER_RE.match(n) or HEAD_RE.match(n)
                                         or n in FIXED_TABLES)]
    if unsupported:
        lines = []
        for n in sorted(unsupported)[:10]:
            why = next((h for pat, h in UNSUPPORTED_HINTS if re.search(pat, n)), "no counterpart in rekindle's ViT")
            lines.append(f"  `{n}` {list(sd[n].shape)}: {why}")
        more = f"\n  ... and {len(unsupported) - 10} more" if len(unsupported) > 10 else ""
        raise ConvertError(f"{len(unsupported)} unsupported tensor(s); rekindle cannot load this model:\n"
                           + "\n".join(lines) + more)

    bad_dtype = [n for n, v in sd.items() if not v.is_floating_point()]
    if bad_dtype:
        raise ConvertError(f"tensor `{bad_dtype[0]}` has dtype {sd[bad_dtype[0]].dtype}; rekindle reads floating point only")

    geo = analyse(sd, set())

    # Position tables.
    for table, width in (("pos_embed", geo["dim"]), ("decoder_pos_embed", geo["decoder_dim"])):
        if table not in sd:
            continue
        if width is None:
            notes.append(f"{table} present without a decoder; kept (rekindle ignores it)")
            continue
        grid, cls_row, ok, diff, note = inspect_pos_table(table, sd[table], width)
        if note:
            warn(f"{note}; rekindle ignores {table} and uses its fixed 2-D sin-cos table")
        if grid is not None:
            if table == "pos_embed":
                geo["grid"], geo["image_size"] = grid, grid * geo["patch"]
            elif geo.get("grid") not in (None, grid):
                raise ConvertError(f"decoder_pos_embed is for a {grid}x{grid} grid but pos_embed for "
                                   f"{geo['grid']}x{geo['grid']}")
            if not cls_row:
                notes.append(f"{table} has no CLS row (timm no_embed_class); kept as is, rekindle ignores it")
        if ok is False:
            warn(f"`{table}` is not the fixed 2-D sin-cos table (max |difference| {diff:.3g}): the source model "
                 f"learned or fine-tuned its position embedding (as timm classifiers do). rekindle ignores `{table}` "
                 "and always adds the sin-cos table, so the model's features will shift; fine-tune before trusting "
                 "its outputs.")
        geo[f"{table}_sincos"] = ok

    if not geo.get("image_size") and meta_image_size:
        geo["image_size"] = meta_image_size  # from a rekindle-written file's metadata

    # Parts to write.
    drop = set()
    if args.drop_head:
        drop |= set(geo["head"])
    if args.drop_decoder:
        drop |= set(geo["decoder"]) | {"decoder_pos_embed"}
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    order = geo["encoder"] + geo["decoder"] + geo["head"] + [t for t in FIXED_TABLES if t in sd]
    tensors = {n: sd[n].detach().to(dtype).contiguous().clone() for n in order if n not in drop}

    from safetensors import safe_open
    from safetensors.torch import save_file

    metadata = {"source": os.path.basename(src), "converted_by": CONVERTED_BY}
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{os.path.basename(out)}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        with safe_open(tmp, framework="pt") as f:  # read the header back before committing
            if set(f.keys()) != set(tensors):
                raise ConvertError("written file does not list the expected tensors")
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

    # Summary.
    n_enc = sum(n in tensors for n in geo["encoder"])
    n_dec = sum(n in tensors for n in geo["decoder"])
    n_head = sum(n in tensors for n in geo["head"])
    n_tab = sum(n in tensors for n in FIXED_TABLES)
    size = os.path.getsize(out)
    print(f"read   {src} ({where})")
    if ignored:
        print(f"       ignored checkpoint entries: {', '.join(ignored)}")
    if dropped_non_tensor:
        print(f"       dropped non-tensor entries: {', '.join(dropped_non_tensor[:8])}"
              f"{' ...' if len(dropped_non_tensor) > 8 else ''}")
    if renamed:
        print(f"       stripped prefixes (module./_orig_mod./model.) from {renamed} name(s)")
    if fc_action:
        print(f"       {fc_action}")
    print(f"wrote  {out} ({size / 2**20:.1f} MiB, {args.dtype}, {len(tensors)} tensors)")
    dec_txt = f"{n_dec}" if geo["decoder"] else "0 (none in file)"
    head_txt = f"{n_head}" if geo["head"] else "0 (none in file)"
    if geo["decoder"] and args.drop_decoder:
        dec_txt = f"0 (dropped {len(geo['decoder'])}, --drop-decoder)"
    if geo["head"] and args.drop_head:
        head_txt = f"0 (dropped 2, --drop-head)"
    print(f"  tensors: encoder {n_enc}, decoder {dec_txt}, head {head_txt}, position tables {n_tab} (ignored by rekindle)")
    print(f"  encoder: dim D={geo['dim']}, depth={geo['depth']}, patch={geo['patch']}, channels={geo['channels']}, "
          f"mlp_ratio={geo['mlp_ratio']} (hidden {geo['hidden']})")
    if geo.get("grid"):
        sc = {True: "fixed sin-cos", False: "LEARNED (rekindle uses sin-cos instead)", None: "not checked"}[geo.get("pos_embed_sincos")]
        print(f"  image:   grid {geo['grid']}x{geo['grid']} from pos_embed -> image_size={geo['image_size']}; pos_embed: {sc}")
    else:
        print(f"  image:   image_size={geo['image_size']} (from rekindle metadata)" if geo.get("image_size")
              else "  image:   size unknown (no square pos_embed)")
    heads_txt = (f"heads={known_heads['heads']} (from rekindle metadata)" if known_heads.get("heads")
                 else "heads:   not stored in the weights (see the note below)")
    print(f"  {heads_txt}")
    if geo["decoder_dim"] is not None:
        print(f"  decoder: dim={geo['decoder_dim']}, depth={geo['decoder_depth']}, predicts "
              f"{geo['patch']}*{geo['patch']}*{geo['channels']}={geo['patch'] ** 2 * geo['channels']} values per patch"
              f"{'' if not args.drop_decoder else ' (dropped)'}")
    if geo["classes"] is not None:
        print(f"  head:    classes={geo['classes']}{'' if not args.drop_head else ' (dropped)'}")
    flag_geo = dict(geo)
    if args.drop_decoder:
        flag_geo.update(decoder_dim=None, decoder_depth=None)
    if args.drop_head:
        flag_geo["classes"] = None
    flags, flag_notes = suggest_flags(flag_geo, known_heads)
    print(f"rekindle flags: {flags}")
    for n in flag_notes + notes:
        print(f"  note: {n}")
    if geo["head"] and not args.drop_head:
        print("  note: rekindle's classifier mean-pools the patch tokens (CLS excluded) after `norm`; a head trained "
              "on the CLS token (timm global_pool='token', MAE fine-tuning without --global_pool) sees different "
              "features -- fine-tune it or use --drop-head")
    print("  note: rekindle's position tables are fixed sin-cos, so --set image_size= may be any multiple of the "
          "patch size without resizing anything")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        convert(args)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # summary piped into `head`; the file is already written
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
