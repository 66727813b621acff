#!/usr/bin/env python3
"""PyTorch side of rekindle's training-step speed comparison (CPU, float32).

  python scripts/bench_torch.py --task classify|mae --batch 64 --iters 10 --warmup 2 --threads 2 [--json] [--compile]

One step = forward, loss, backward, AdamW step, zero_grad(set_to_none=True).
classify: timm vit_tiny_patch16_224 at img 32 / patch 4 / 10 classes, avg-pool, frozen sin-cos pos_embed,
          cross-entropy against random labels.
mae:      MAE (scripts/reference/mae_torch.py), encoder 192/12/3, decoder 128/2/4, patch 4, img 32, RGB,
          mask ratio 0.75, fresh random masking every step.
With --json, exactly one JSON object is printed on stdout (the human-readable line goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
from mae_torch import MAE, random_masking_ids, sincos_2d  # noqa: E402

IMG, PATCH, CHANS, CLASSES = 32, 4, 3, 10


def build(task: str):
    if task == "classify":
        import timm

        model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=IMG, patch_size=PATCH,
                                  num_classes=CLASSES, global_pool="avg", fc_norm=False)
        with torch.no_grad():
            table = torch.from_numpy(sincos_2d(model.embed_dim, IMG // PATCH)).float()
            model.pos_embed.copy_(table.unsqueeze(0))
        model.pos_embed.requires_grad_(False)

        def loss_fn(m, images, labels):
            return F.cross_entropy(m(images), labels)
    else:
        model = MAE(img_size=IMG, patch_size=PATCH, in_chans=CHANS, embed_dim=192, depth=12, num_heads=3,
                    mlp_ratio=4.0, decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4,
                    num_classes=CLASSES)

        def loss_fn(m, images, ids_keep, ids_restore, mask):
            pred = m.mae(images, ids_keep, ids_restore)
            return m.mae_loss(images, pred, mask)
    return model, loss_fn


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["classify", "mae"], required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compile", action="store_true", help="wrap the forward+loss in torch.compile")
    args = ap.parse_args()
    if args.iters < 1:
        ap.error("--iters must be >= 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, loss_fn = build(args.task)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)

    images = torch.randn(args.batch, CHANS, IMG, IMG)
    labels = torch.randint(0, CLASSES, (args.batch,))
    L = (IMG // PATCH) ** 2
    gen = torch.Generator().manual_seed(args.seed + 1)

    compiled = None
    compile_note = "off"
    fn = loss_fn
    if args.compile:
        try:
            compiled = torch.compile(loss_fn)
            fn = compiled
            compile_note = "on"
        except Exception as e:  # noqa: BLE001
            compile_note = f"failed at wrap: {type(e).__name__}: {e}"

    def step():
        if args.task == "classify":
            loss = fn(model, images, labels)
        else:
            ids_keep, ids_restore, mask = random_masking_ids(args.batch, L, 0.75, generator=gen)
            loss = fn(model, images, ids_keep, ids_restore, mask)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    if compiled is not None:
        # compilation happens lazily on the first call; fall back to eager if it fails
        try:
            step()
        except Exception as e:  # noqa: BLE001
            compile_note = f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            fn = loss_fn
            opt.zero_grad(set_to_none=True)
        else:
            if args.warmup > 0:
                args.warmup -= 1  # the compiling step counts as one warmup step

    for _ in range(args.warmup):
        step()

    times = []
    loss = None
    for _ in range(args.iters):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)

    med = statistics.median(times)
    mean = statistics.fmean(times)
    result = {
        "images_per_sec": args.batch / med,
        "step_seconds_median": med,
        "task": args.task,
        "batch": args.batch,
        "threads": args.threads,
        "torch_version": torch.__version__,
        "images_per_sec_mean": args.batch / mean,
        "step_seconds_mean": mean,
        "iters": args.iters,
        "compile": compile_note,
        "final_loss": float(loss.detach()),
    }
    human = (f"torch {torch.__version__} {args.task}: batch {args.batch}, threads {args.threads}, "
             f"{args.iters} iters: median {med * 1e3:.1f} ms/step = {args.batch / med:.1f} img/s "
             f"(mean {mean * 1e3:.1f} ms = {args.batch / mean:.1f} img/s), compile={compile_note}, "
             f"loss {result['final_loss']:.4f}")
    if args.json:
        print(human, file=sys.stderr)
        print(json.dumps(result))
    else:
        print(human)


if __name__ == "__main__":
    main()
