"""PyTorch reference model for rekindle's ViT classifier and MAE pre-training.

This module is the single source of truth used by
``scripts/reference/make_fixtures.py`` (golden tensors for the Rust tests) and
``scripts/bench_torch.py`` (speed comparison).  It is built from timm's
``Block``/``PatchEmbed`` so that parameter names and semantics line up with a
plain ``timm.models.vision_transformer.VisionTransformer``.

Conventions (the Rust side must match these):

* Patch tokens are laid out row-major: token ``k = row * grid + col``.
* The fixed 2-D sin-cos position table has, for each token, the first ``D/2``
  channels encoding the *column* (x / w) coordinate and the last ``D/2``
  channels encoding the *row* (y / h) coordinate. Row 0 (CLS) is all zeros.
  Each half is ``concat(sin(pos * omega), cos(pos * omega))`` with
  ``omega[i] = 1 / 10000 ** (i / (D/4))`` for ``i in 0..D/4``.
* Patchified pixel order inside a patch is (row-in-patch, col-in-patch, channel).
* ``mask`` is 1 for removed (masked) patches, 0 for kept ones.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block


# --------------------------------------------------------------------------
# Fixed position embedding
# --------------------------------------------------------------------------


def _sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """[N] positions -> [N, dim] table: concat(sin(p*omega), cos(p*omega))."""
    if dim % 2 != 0:
        raise ValueError(f"1-D sin-cos dim must be even, got {dim}")
    quarter = dim // 2
    omega = 1.0 / (10000.0 ** (np.arange(quarter, dtype=np.float64) / quarter))
    angles = positions.reshape(-1).astype(np.float64)[:, None] * omega[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(embed_dim: int, grid_size: int, cls_token: bool = True) -> np.ndarray:
    """Fixed 2-D sin-cos table, float64, shape [(1 if cls_token) + grid*grid, embed_dim].

    Token ``k = row * grid_size + col``; channels ``[:D/2]`` encode ``col``,
    channels ``[D/2:]`` encode ``row``; the optional leading CLS row is zero.
    """
    if embed_dim % 4 != 0:
        raise ValueError(f"2-D sin-cos embed_dim must be divisible by 4, got {embed_dim}")
    idx = np.arange(grid_size * grid_size)
    rows = idx // grid_size
    cols = idx % grid_size
    half = embed_dim // 2
    table = np.concatenate([_sincos_1d(half, cols), _sincos_1d(half, rows)], axis=1)
    if cls_token:
        table = np.concatenate([np.zeros((1, embed_dim)), table], axis=0)
    return table


# --------------------------------------------------------------------------
# Pixel helpers
# --------------------------------------------------------------------------


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, L, p*p*C] with in-patch order (row, col, channel)."""
    b, c, h, w = images.shape
    gh, gw = h // patch, w // patch
    x = images.reshape(b, c, gh, patch, gw, patch)
    # dims: b c gh pr gw pc -> b gh gw pr pc c
    x = x.permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, gh * gw, patch * patch * c)


def random_masking_ids(B: int, L: int, mask_ratio: float, generator: torch.Generator | None = None,
                       device=None):
    """MAE-style per-sample random masking indices.

    Returns ``ids_keep`` int64 [B, Lk], ``ids_restore`` int64 [B, L] and
    ``mask`` float32 [B, L] (1 = removed), with ``Lk = int(L * (1 - mask_ratio))``.
    """
    noise = torch.rand(B, L, generator=generator, device=device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    len_keep = int(L * (1 - mask_ratio))
    ids_keep = ids_shuffle[:, :len_keep]
    mask = torch.ones(B, L, device=noise.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return ids_keep, ids_restore, mask


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


class MAE(nn.Module):
    """ViT encoder + classification head + MAE decoder sharing one encoder."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768, depth=12,
                 num_heads=12, mlp_ratio=4.0, decoder_embed_dim=512, decoder_depth=8,
                 decoder_num_heads=16, num_classes=1000):
        super().__init__()
        self.img_size = img_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.decoder_embed_dim = decoder_embed_dim
        self.num_classes = num_classes
        norm_layer = partial(nn.LayerNorm, eps=1e-6)

        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size,
                                      in_chans=in_chans, embed_dim=embed_dim)
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size * self.grid_size
        assert self.patch_embed.num_patches == self.num_patches

        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        pos = torch.from_numpy(sincos_2d(embed_dim, self.grid_size, cls_token=True)).float()
        self.register_buffer("pos_embed", pos.unsqueeze(0))  # [1, 1+L, D], fixed

        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
            for _ in range(depth)
        ])
        self.norm = norm_layer(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)

        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        dpos = torch.from_numpy(sincos_2d(decoder_embed_dim, self.grid_size, cls_token=True)).float()
        self.register_buffer("decoder_pos_embed", dpos.unsqueeze(0))  # [1, 1+L, Dd], fixed
        self.decoder_blocks = nn.ModuleList([
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                  norm_layer=norm_layer)
            for _ in range(decoder_depth)
        ])
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size * patch_size * in_chans, bias=True)

        self._default_init()

    # -- init (roughly MAE-like; fixtures re-initialise anyway) ----------------
    def _default_init(self):
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # -- encoder ---------------------------------------------------------------
    def _embed_patches(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images)  # [B, L, D]
        return x + self.pos_embed[:, 1:, :]

    def _cls(self, batch: int) -> torch.Tensor:
        cls = self.cls_token + self.pos_embed[:, :1, :]
        return cls.expand(batch, -1, -1)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        x = self._embed_patches(images)
        x = torch.cat([self._cls(x.shape[0]), x], dim=1)
        x = self._encode(x)
        pooled = x[:, 1:, :].mean(dim=1)
        return self.head(pooled)

    # -- MAE -------------------------------------------------------------------
    def mae(self, images: torch.Tensor, ids_keep: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self._embed_patches(images)
        b, _, d = x.shape
        x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
        x = torch.cat([self._cls(b), x], dim=1)
        x = self._encode(x)

        x = self.decoder_embed(x)  # [B, 1+Lk, Dd]
        dd = x.shape[-1]
        n_mask = ids_restore.shape[1] + 1 - x.shape[1]
        tokens = torch.cat([x[:, 1:, :], self.mask_token.expand(b, n_mask, -1)], dim=1)
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, dd))
        x = torch.cat([x[:, :1, :], tokens], dim=1)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)
        return x[:, 1:, :]

    def mae_loss(self, images: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        target = patchify(images, self.patch_size)
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)  # unbiased
        target = (target - mean) / torch.sqrt(var + 1e-6)
        per_patch = ((pred - target) ** 2).mean(dim=-1)
        return (per_patch * mask).sum() / mask.sum()

    @staticmethod
    def cls_loss(logits: torch.Tensor, targets: torch.Tensor, class_mask: torch.Tensor) -> torch.Tensor:
        keep = (class_mask != 0).unsqueeze(0).expand_as(logits)
        masked = logits.masked_fill(~keep, float("-inf"))
        logsm = F.log_softmax(masked, dim=-1)
        per = torch.where(keep, targets * logsm, torch.zeros_like(logsm))
        return -per.sum(dim=-1).mean()

    # -- parameter groups used by each path -------------------------------------
    def cls_param_names(self):
        return [n for n, _ in self.named_parameters()
                if not (n.startswith("decoder_") or n == "mask_token")]

    def mae_param_names(self):
        return [n for n, _ in self.named_parameters() if not n.startswith("head.")]
