#!/usr/bin/env python3
"""Side-by-side tables from one `scripts/gpu/run.sh OUT` run, as Markdown for docs/PERFORMANCE.md.

  python3 scripts/gpu/compare.py OUT

Reads OUT/kernels-bf16.json and OUT/kernels-fp32.json (`rekindle bench kernels`), OUT/torch-kernels.json
(scripts/gpu/bench_kernels_torch.py), OUT/step-*.json (`rekindle bench step`) and OUT/torch-step-*.json
(scripts/bench_torch.py). Files that are missing or empty are reported as such, not skipped silently.
"""

import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"- `{os.path.basename(path)}`: not available ({type(e).__name__})")
        return None


def kernels(out):
    torch = load(os.path.join(out, "torch-kernels.json"))
    for precision, dtype in (("bf16", "bfloat16"), ("fp32", "float32")):
        ours = load(os.path.join(out, f"kernels-{precision}.json"))
        if not ours:
            continue
        c = ours["ceilings"]
        print(f"\n### Kernels, {precision}: {ours['device']}, {ours['preset']}, batch {ours['batch']}")
        print(f"\nCeilings measured at start: copy {c['copy_gbytes_per_sec']:.0f} GB/s, "
              f"{precision} GEMM ({c['gemm_size']}³) {c['gemm_tflops']:.1f} TFLOP/s.\n")
        theirs = {}
        for k in (torch or {}).get("kernels", []):
            if k["dtype"] == dtype:
                theirs[(k["kernel"], k["shape"])] = k
                theirs.setdefault((k["kernel"], None), k)
        print("| op | shape | rekindle ms | rate | of ceiling | PyTorch ms | PyTorch rate | rekindle / PyTorch speed |")
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for k in ours["kernels"]:
            rate = f"{k['tflops']:.3g} TFLOP/s" if k.get("tflops") else f"{k['gbytes_per_sec']:.0f} GB/s"
            t = theirs.get((k["kernel"], k["shape"])) or theirs.get((k["kernel"], None))
            if t is None:
                their_ms = their_rate = speed = "–"
            else:
                their_ms = f"{t['seconds'] * 1e3:.3f}"
                if k.get("tflops") and t.get("tflops"):
                    their_rate, speed = f"{t['tflops']:.1f} TFLOP/s", f"{k['tflops'] / t['tflops']:.2f}×"
                elif k.get("gbytes_per_sec") and t.get("gbytes_per_sec"):
                    their_rate, speed = f"{t['gbytes_per_sec']:.0f} GB/s", f"{k['gbytes_per_sec'] / t['gbytes_per_sec']:.2f}×"
                else:
                    their_rate, speed = "–", "–"
                if t["shape"] != k["shape"]:
                    their_ms += f" ({t['shape']})"
            print(f"| {k['kernel']} | {k['shape']} | {k['seconds'] * 1e3:.3f} | {rate} | "
                  f"{100 * k['fraction_of_ceiling']:.0f}% | {their_ms} | {their_rate} | {speed} |")


def steps(out):
    print("\n### Training steps\n")
    print("| run | images/s | ms/step | MFU | vs PyTorch bf16 eager | vs PyTorch bf16 compiled |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    names = sorted(n for n in os.listdir(out) if n.endswith(".json") and (n.startswith("step-") or n.startswith("torch-step-")))
    runs = {n[:-5]: load(os.path.join(out, n)) for n in names}
    for name, r in runs.items():
        if not r:
            continue
        task = r["task"]
        eager, compiled = runs.get(f"torch-step-{task}-bf16"), runs.get(f"torch-step-{task}-bf16-compile")
        # PyTorch's MFU counts rekindle's FLOPs for the same step (the same model and task).
        ours = next((o for n, o in runs.items() if n.startswith("step-") and o and o["task"] == task and o.get("mfu")), None)
        if r.get("mfu"):
            mfu = f"{100 * r['mfu']:.1f}%"
        elif ours:
            peak = ours["gflops_per_sec"] / ours["mfu"]
            mfu = f"{100 * r['images_per_sec'] * ours['train_gflops_per_image'] / peak:.1f}%"
        else:
            mfu = "–"
        rel = [f"{r['images_per_sec'] / t['images_per_sec']:.2f}×" if t else "–" for t in (eager, compiled)]
        print(f"| {name} | {r['images_per_sec']:.1f} | {r['step_seconds_median'] * 1e3:.1f} | {mfu} | {rel[0]} | {rel[1]} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    kernels(sys.argv[1])
    steps(sys.argv[1])
