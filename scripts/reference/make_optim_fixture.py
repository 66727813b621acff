"""Writes tests/fixtures/optim.safetensors: three steps of torch.optim.AdamW and SGD (plain and
Nesterov momentum) over two parameter groups, one with weight decay and an LR scale of 0.65, one
without, so the Rust optimisers can be checked against PyTorch's.

Usage: /tmp/ref/bin/python scripts/reference/make_optim_fixture.py [--out tests/fixtures]
"""
import argparse
import os

import torch
from safetensors.torch import save_file

BASE_LR = 1e-2
SCALE = 0.65
STEPS = 3


def run(make_opt, p0, grads):
    decayed = torch.nn.Parameter(p0[:12].clone())
    plain = torch.nn.Parameter(p0[12:].clone())
    opt = make_opt([
        {"params": [decayed], "lr": BASE_LR * SCALE},
        {"params": [plain], "lr": BASE_LR, "weight_decay": 0.0},
    ])
    for g in grads:
        decayed.grad = g[:12].clone()
        plain.grad = g[12:].clone()
        opt.step()
    return torch.cat([decayed.detach(), plain.detach()])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures"))
    args = ap.parse_args()
    torch.manual_seed(7)
    p0 = torch.randn(20)
    grads = [torch.randn(20) for _ in range(STEPS)]
    out = {"params": p0, "grads": torch.stack(grads)}
    out["adamw"] = run(lambda g: torch.optim.AdamW(g, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05), p0, grads)
    out["sgd"] = run(lambda g: torch.optim.SGD(g, momentum=0.9, weight_decay=1e-3), p0, grads)
    out["sgd_nesterov"] = run(lambda g: torch.optim.SGD(g, momentum=0.9, nesterov=True, weight_decay=1e-3), p0, grads)
    path = os.path.join(args.out, "optim.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path,
              metadata={"base_lr": str(BASE_LR), "scale": str(SCALE), "split": "12"})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
