#!/usr/bin/env python3
"""Write golden PyTorch fixtures for the Rust ViT/MAE implementation.

Usage:  python scripts/reference/make_fixtures.py [--out tests/fixtures]

For each config it writes ``<name>.safetensors`` containing inputs, parameters,
the fixed sin-cos tables, forward outputs, losses and gradients. Everything is
computed in float64 from inputs/parameters that are first rounded to float32,
so the stored float32 inputs reproduce the stored outputs to float64 precision.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mae_torch import MAE, random_masking_ids, sincos_2d  # noqa: E402

CONFIGS = {
    "vit_grey28": dict(img_size=28, in_chans=1, patch_size=4, embed_dim=32, depth=2, num_heads=4,
                       mlp_ratio=4.0, decoder_embed_dim=24, decoder_depth=2, decoder_num_heads=3,
                       num_classes=10, batch=3, mask_ratio=0.75, seed=1234),
    "vit_w48": dict(img_size=16, in_chans=3, patch_size=4, embed_dim=48, depth=2, num_heads=3,
                    mlp_ratio=4.0, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4,
                    num_classes=7, batch=2, mask_ratio=0.75, seed=4321),
}

CONFIG_KEYS = ["img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio",
               "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "num_classes", "batch",
               "mask_ratio"]


def build_model(cfg) -> MAE:
    return MAE(img_size=cfg["img_size"], patch_size=cfg["patch_size"], in_chans=cfg["in_chans"],
               embed_dim=cfg["embed_dim"], depth=cfg["depth"], num_heads=cfg["num_heads"],
               mlp_ratio=cfg["mlp_ratio"], decoder_embed_dim=cfg["decoder_embed_dim"],
               decoder_depth=cfg["decoder_depth"], decoder_num_heads=cfg["decoder_num_heads"],
               num_classes=cfg["num_classes"])


def f32_round(t: torch.Tensor) -> torch.Tensor:
    """Round a float64 tensor to the nearest float32 value, keep dtype float64."""
    return t.float().double()


@torch.no_grad()
def reinit_(model: MAE) -> None:
    """Random re-init so every gradient is clearly nonzero (float64, then f32-rounded)."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            fan_in = m.weight[0].numel()
            m.weight.normal_(0.0, 1.0 / math.sqrt(fan_in))
            if m.bias is not None:
                m.bias.normal_(0.0, 0.1)
        elif isinstance(m, nn.LayerNorm):
            m.weight.copy_(1.0 + 0.1 * torch.randn_like(m.weight))
            m.bias.copy_(0.1 * torch.randn_like(m.bias))
    model.cls_token.normal_(0.0, 0.5)
    model.mask_token.normal_(0.0, 0.5)
    for p in model.parameters():
        p.copy_(f32_round(p))


def check_against_timm(model: MAE, cfg, images: torch.Tensor, logits: torch.Tensor) -> float:
    """Classification path must equal timm's VisionTransformer with the same weights."""
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=cfg["img_size"], patch_size=cfg["patch_size"],
                            in_chans=cfg["in_chans"], embed_dim=cfg["embed_dim"], depth=cfg["depth"],
                            num_heads=cfg["num_heads"], mlp_ratio=cfg["mlp_ratio"],
                            num_classes=cfg["num_classes"], global_pool="avg", fc_norm=False,
                            qkv_bias=True).double().eval()
    ours = model.state_dict()
    theirs = vit.state_dict()
    sd = {}
    for k, v in theirs.items():
        assert k in ours, f"timm key {k} has no counterpart in MAE"
        assert ours[k].shape == v.shape, f"{k}: {tuple(ours[k].shape)} vs timm {tuple(v.shape)}"
        sd[k] = ours[k]
    # pos_embed (incl. CLS row) is overwritten with our sin-cos table explicitly.
    table = torch.from_numpy(sincos_2d(cfg["embed_dim"], cfg["img_size"] // cfg["patch_size"]))
    sd["pos_embed"] = table.unsqueeze(0).to(torch.float64)
    vit.load_state_dict(sd, strict=True)
    with torch.no_grad():
        ref = vit(images)
    err = (ref - logits).abs().max().item()
    assert err < 1e-10, f"classification path differs from timm VisionTransformer: {err}"
    return err


def make_one(name: str, cfg, out_dir: str) -> str:
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg).double()
    reinit_(model)
    model.eval()  # no dropout anyway

    # fixed tables must match the generator exactly (buffers were built in float32)
    grid = cfg["img_size"] // cfg["patch_size"]
    pos64 = torch.from_numpy(sincos_2d(cfg["embed_dim"], grid))
    dpos64 = torch.from_numpy(sincos_2d(cfg["decoder_embed_dim"], grid))
    model.pos_embed.copy_(pos64.unsqueeze(0))
    model.decoder_pos_embed.copy_(dpos64.unsqueeze(0))

    B, K = cfg["batch"], cfg["num_classes"]
    L = grid * grid
    images = f32_round(torch.randn(B, cfg["in_chans"], cfg["img_size"], cfg["img_size"],
                                   dtype=torch.float64))
    class_mask = torch.ones(K, dtype=torch.float64)
    class_mask[-2:] = 0
    allowed = torch.nonzero(class_mask).flatten()
    labels = allowed[torch.randint(len(allowed), (B,))]
    smoothing = 0.1
    targets = torch.full((B, K), smoothing / K, dtype=torch.float64)
    targets[torch.arange(B), labels] += 1.0 - smoothing
    targets = f32_round(targets)

    gen = torch.Generator().manual_seed(cfg["seed"] + 1)
    ids_keep, ids_restore, mask = random_masking_ids(B, L, cfg["mask_ratio"], generator=gen)
    mask = mask.double()
    len_keep = int(L * (1 - cfg["mask_ratio"]))
    assert ids_keep.shape == (B, len_keep) and int(mask.sum()) == B * (L - len_keep)

    params = dict(model.named_parameters())
    cls_names = model.cls_param_names()
    mae_names = model.mae_param_names()

    # classification path
    logits = model.classify(images)
    loss_cls = model.cls_loss(logits, targets, class_mask)
    grads_cls = torch.autograd.grad(loss_cls, [params[n] for n in cls_names], allow_unused=False)

    # MAE path
    pred = model.mae(images, ids_keep, ids_restore)
    loss_mae = model.mae_loss(images, pred, mask)
    grads_mae = torch.autograd.grad(loss_mae, [params[n] for n in mae_names], allow_unused=False)

    assert torch.isfinite(loss_cls) and torch.isfinite(loss_mae)
    for n, g in list(zip(cls_names, grads_cls)) + list(zip(mae_names, grads_mae)):
        assert g is not None and torch.isfinite(g).all(), n
        assert g.abs().max() > 1e-8, f"gradient of {n} is (near) zero"

    timm_err = check_against_timm(model, cfg, images, logits.detach()) if name == "vit_grey28" else None

    out = {
        "images": images,
        "targets": targets,
        "class_mask": class_mask,
        "ids_keep": ids_keep,
        "ids_restore": ids_restore,
        "mask": mask,
        "pos_embed": pos64,
        "decoder_pos_embed": dpos64,
        "logits": logits.detach(),
        "loss_cls": loss_cls.detach().reshape(1),
        "pred": pred.detach(),
        "loss_mae": loss_mae.detach().reshape(1),
    }
    for n, p in params.items():
        out[f"param.{n}"] = p.detach()
    for n, g in zip(cls_names, grads_cls):
        out[f"grad_cls.{n}"] = g
    for n, g in zip(mae_names, grads_mae):
        out[f"grad_mae.{n}"] = g

    n_grad = sum(1 for k in out if k.startswith("grad_"))
    assert n_grad == len(cls_names) + len(mae_names), (n_grad, len(cls_names), len(mae_names))
    assert len(set(cls_names) | set(mae_names)) == len(params), "some parameter is used by no path"

    stored = {}
    for k, v in out.items():
        v = v.detach().contiguous()
        stored[k] = v.to(torch.int64) if not v.is_floating_point() else v.to(torch.float32)
    meta = {"config": json.dumps({k: cfg[k] for k in CONFIG_KEYS}, sort_keys=True)}
    path = os.path.join(out_dir, f"{name}.safetensors")
    save_file(stored, path, metadata=meta)

    size = os.path.getsize(path)
    print(f"{name}: {len(stored)} tensors, {size} bytes -> {path}")
    print(f"  params={len(params)} grad_cls={len(cls_names)} grad_mae={len(mae_names)} "
          f"L={L} len_keep={len_keep}")
    print(f"  loss_cls={loss_cls.item():.10f} loss_mae={loss_mae.item():.10f}"
          + (f" timm_max_abs_err={timm_err:.2e}" if timm_err is not None else ""))
    return path


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "tests", "fixtures"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=default_out)
    ap.add_argument("--only", choices=sorted(CONFIGS), default=None)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    for name, cfg in CONFIGS.items():
        if args.only and name != args.only:
            continue
        make_one(name, cfg, args.out)


if __name__ == "__main__":
    main()
