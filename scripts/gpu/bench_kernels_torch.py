#!/usr/bin/env python3
"""PyTorch counterparts of `rekindle bench kernels` at vit-base-16 shapes, on the GPU, timed with
CUDA events (mean over --iters after a warm-up): matrix products, SDPA forward and backward at
T = 197 and T = 50 (head dim 64), LayerNorm, GELU, cross-entropy and fused AdamW, each in fp32 and
bf16. Prints one JSON object; compare with `rekindle bench kernels --device cuda:0 --preset
vit-base-16 --batch B --json` from the same run (scripts/gpu/run.sh runs both)."""

import argparse
import json

import torch
import torch.nn.functional as F


def timed(fn, iters):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / iters


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=20)
    a = p.parse_args()
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    b, t, d, hidden, heads, classes = a.batch, 197, 768, 3072, 12, 1000
    rows = b * t
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "batch": b, "kernels": []}

    def record(name, dtype, shape, seconds, flops=None, nbytes=None):
        entry = {"kernel": name, "dtype": str(dtype).replace("torch.", ""), "shape": shape, "seconds": seconds}
        if flops:
            entry["tflops"] = flops / seconds / 1e12
        if nbytes:
            entry["gbytes_per_sec"] = nbytes / seconds / 1e9
        out["kernels"].append(entry)

    for dtype in (torch.float32, torch.bfloat16):
        size = 2 if dtype == torch.bfloat16 else 4
        x = torch.randn(rows, d, device=dev, dtype=dtype)
        w = torch.randn(3 * d, d, device=dev, dtype=dtype)
        bias = torch.randn(3 * d, device=dev, dtype=dtype)
        record("gemm qkv forward", dtype, f"{rows}x{3*d}x{d}", timed(lambda: torch.addmm(bias, x, w.t()), a.iters), flops=2 * rows * 3 * d * d)
        g = torch.randn(rows, hidden, device=dev, dtype=dtype)
        record("gemm fc1 weight grad", dtype, f"{hidden}x{d}x{rows}", timed(lambda: g.t() @ x, a.iters), flops=2 * rows * hidden * d)
        for tokens in (197, 50):
            q, k, v = (torch.randn(b, heads, tokens, 64, device=dev, dtype=dtype, requires_grad=True) for _ in range(3))
            fwd_flops = 4 * b * heads * tokens * tokens * 64
            record("attention forward", dtype, f"B{b} H{heads} T{tokens} D64", timed(lambda: F.scaled_dot_product_attention(q, k, v), a.iters), flops=fwd_flops)
            o = F.scaled_dot_product_attention(q, k, v)
            do = torch.randn_like(o)
            record("attention backward", dtype, f"B{b} H{heads} T{tokens} D64",
                   timed(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True), a.iters), flops=2.5 * fwd_flops)
        xr = x.clone().requires_grad_(True)
        ln_w, ln_b = torch.ones(d, device=dev, dtype=dtype, requires_grad=True), torch.zeros(d, device=dev, dtype=dtype, requires_grad=True)
        record("layernorm forward", dtype, f"{rows}x{d}", timed(lambda: F.layer_norm(xr, (d,), ln_w, ln_b, 1e-6), a.iters), nbytes=2 * rows * d * size)
        y = F.layer_norm(xr, (d,), ln_w, ln_b, 1e-6)
        dy = torch.randn_like(y)
        record("layernorm backward", dtype, f"{rows}x{d}", timed(lambda: torch.autograd.grad(y, (xr, ln_w, ln_b), dy, retain_graph=True), a.iters), nbytes=3 * rows * d * size)
        h = torch.randn(rows, hidden, device=dev, dtype=dtype, requires_grad=True)
        record("gelu forward", dtype, f"{rows * hidden}", timed(lambda: F.gelu(h), a.iters), nbytes=2 * rows * hidden * size)
        gy = F.gelu(h)
        dg = torch.randn_like(gy)
        record("gelu backward", dtype, f"{rows * hidden}", timed(lambda: torch.autograd.grad(gy, h, dg, retain_graph=True), a.iters), nbytes=3 * rows * hidden * size)
        logits = torch.randn(b, classes, device=dev, dtype=dtype, requires_grad=True)
        target = torch.softmax(torch.randn(b, classes, device=dev), -1).to(dtype)
        record("cross-entropy", dtype, f"{b}x{classes}",
               timed(lambda: torch.autograd.grad(F.cross_entropy(logits, target), logits), a.iters), nbytes=3 * b * classes * size)
    params = [torch.randn(12 * d * d * 12, device=dev, requires_grad=True)]
    params[0].grad = torch.randn_like(params[0])
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True)
    n = params[0].numel()
    record("adamw", torch.float32, f"{n}", timed(opt.step, a.iters), nbytes=7 * 4 * n)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
