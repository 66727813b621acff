#!/usr/bin/env python3
"""PyTorch side of rekindle's training-step speed comparison (`rekindle bench step`).

  python scripts/bench_torch.py --task classify|mae|dietcl --batch 64 --iters 10 --warmup 2 --threads 2 [--json] [--compile]
  python scripts/bench_torch.py --device cuda --precision bf16 --preset vit-base-16 --task dietcl --batch 256 --json

One step = forward, loss, backward, AdamW step, zero_grad(set_to_none=True), on random images.
classify: timm VisionTransformer at the preset's shape, avg-pool, frozen sin-cos pos_embed,
          cross-entropy against random labels.
mae:      MAE (scripts/reference/mae_torch.py, timm Blocks), mask ratio 0.75, fresh random masking
          every step.
dietcl:   DietCL's stage-1 step, as `rekindle bench step --task dietcl`: round(40%) of the batch
          through MAE and the rest through classification, one backward over the sum, one update.
Presets (as rekindle's): vit-tiny-4-32 (img 32, patch 4, 192/12/3, decoder 128/2/4, 10 classes) and
vit-base-16 (img 224, patch 16, 768/12/12, decoder 512/8/16, 1000 classes).
On CUDA, timm's attention is F.scaled_dot_product_attention, `--precision bf16` runs the forward
under torch.autocast(bfloat16) with fp32 master weights (PyTorch's standard mixed precision), AdamW
is the fused implementation, and every step is timed between device synchronisations.
With --json, exactly one JSON object is printed on stdout (the human-readable line goes to stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
from mae_torch import MAE, random_masking_ids, sincos_2d  # noqa: E402

# img, patch, channels, dim, depth, heads, decoder dim, decoder depth, decoder heads, classes
PRESETS = {
    "vit-tiny-4-32": (32, 4, 3, 192, 12, 3, 128, 2, 4, 10),
    "vit-base-16": (224, 16, 3, 768, 12, 12, 512, 8, 16, 1000),
}


def build(task: str, preset: str):
    img, patch, chans, dim, depth, heads, ddim, ddepth, dheads, classes = PRESETS[preset]
    if task == "classify":
        from timm.models.vision_transformer import VisionTransformer

        model = VisionTransformer(img_size=img, patch_size=patch, in_chans=chans, embed_dim=dim, depth=depth,
                                  num_heads=heads, num_classes=classes, global_pool="avg", fc_norm=False)
        with torch.no_grad():
            table = torch.from_numpy(sincos_2d(model.embed_dim, img // patch)).float()
            model.pos_embed.copy_(table.unsqueeze(0))
        model.pos_embed.requires_grad_(False)

        def loss_fn(m, images, labels):
            return F.cross_entropy(m(images), labels)
    else:
        model = MAE(img_size=img, patch_size=patch, in_chans=chans, embed_dim=dim, depth=depth, num_heads=heads,
                    mlp_ratio=4.0, decoder_embed_dim=ddim, decoder_depth=ddepth, decoder_num_heads=dheads,
                    num_classes=classes)

        def loss_fn(m, images, labels, ids_keep, ids_restore, mask):
            n = ids_keep.shape[0]
            loss = m.mae_loss(images[:n], m.mae(images[:n], ids_keep, ids_restore), mask)
            if n < images.shape[0]:
                loss = loss + F.cross_entropy(m.classify(images[n:]), labels[n:])
            return loss
    return model, loss_fn


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["classify", "mae", "dietcl"], required=True)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="vit-tiny-4-32")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: autocast to bfloat16 (CUDA), fp32 master weights")
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

    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    if args.precision == "bf16" and not on_gpu:
        ap.error("--precision bf16 is for --device cuda (rekindle's CPU backend computes in fp32)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, loss_fn = build(args.task, args.preset)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=on_gpu or None)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if args.precision == "bf16"
                else contextlib.nullcontext())

    img, patch, chans, *_, classes = PRESETS[args.preset]
    images = torch.randn(args.batch, chans, img, img, device=device)
    labels = torch.randint(0, classes, (args.batch,), device=device)
    L = (img // patch) ** 2
    mae_images = {"classify": 0, "mae": args.batch, "dietcl": round(0.4 * args.batch)}[args.task]
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
        with autocast:
            if args.task == "classify":
                loss = fn(model, images, labels)
            else:
                ids = random_masking_ids(mae_images, L, 0.75, generator=gen)
                ids_keep, ids_restore, mask = (t.to(device, non_blocking=True) for t in ids)
                loss = fn(model, images, labels, ids_keep, ids_restore, mask)
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
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    for _ in range(args.iters):
        sync()
        t0 = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t0)

    med = statistics.median(times)
    mean = statistics.fmean(times)
    result = {
        "images_per_sec": args.batch / med,
        "step_seconds_median": med,
        "task": args.task,
        "preset": args.preset,
        "device": torch.cuda.get_device_name(device) if on_gpu else "cpu",
        "precision": args.precision,
        "batch": args.batch,
        "threads": args.threads,
        "torch_version": torch.__version__,
        "images_per_sec_mean": args.batch / mean,
        "step_seconds_mean": mean,
        "iters": args.iters,
        "compile": compile_note,
        "final_loss": float(loss.detach()),
    }
    human = (f"torch {torch.__version__} {args.preset} {args.task} on {result['device']} ({args.precision}): "
             f"batch {args.batch}, threads {args.threads}, "
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
