#!/usr/bin/env bash
# Side-by-side CPU training-step throughput: rekindle against PyTorch (timm ViT / MAE) on the same
# model, batch and thread count. Runs alternate (rekindle, PyTorch, rekindle, ...) so that drift in
# a shared machine's speed hits both sides alike; the summary reports medians over the rounds.
#
# usage: scripts/compare_cpu.sh [ROUNDS] [BATCH] [THREADS]      (defaults: 3 64 2)
# needs: cargo build --release; a Python with torch+timm at $PYTHON (default /tmp/ref/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BATCH=${2:-64}
THREADS=${3:-2}
PYTHON=${PYTHON:-/tmp/ref/bin/python}
PRESET=vit-tiny-4-32
REKINDLE=./target/release/rekindle
out=$(mktemp)
for round in $(seq "$ROUNDS"); do
  for task in classify mae; do
    echo "round $round/$ROUNDS: $task" >&2
    r=$("$REKINDLE" bench step --preset $PRESET --batch "$BATCH" --task $task --threads "$THREADS" --iters 5 --json)
    t=$("$PYTHON" scripts/bench_torch.py --task $task --batch "$BATCH" --threads "$THREADS" --iters 5 --json)
    echo "rekindle $task $r" >>"$out"
    echo "pytorch $task $t" >>"$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rates = {}
for line in open(sys.argv[1]):
    side, task, js = line.split(" ", 2)
    rates.setdefault((side, task), []).append(json.loads(js)["images_per_sec"])
print(f"{'task':<9} {'rekindle img/s':>15} {'PyTorch img/s':>14} {'speed-up':>9}   (medians of {len(rates[('rekindle','classify')])} alternating rounds)")
for task in ("classify", "mae"):
    r, t = statistics.median(rates[("rekindle", task)]), statistics.median(rates[("pytorch", task)])
    print(f"{task:<9} {r:>15.1f} {t:>14.1f} {r / t:>8.2f}x")
PY
rm -f "$out"
