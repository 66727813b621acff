#!/usr/bin/env bash
# Runs the quickstart and every Fashion-MNIST config with one rekindle binary, so that a refactor
# can show its summaries unchanged: run it with the binary from before and after the change into
# two directories, then `same-behaviour.sh compare BEFORE AFTER` diffs each summary.json with the
# wall time left out (and pre-training's mae.safetensors byte for byte).
#
#   scripts/same-behaviour.sh run BIN OUT      # BIN: a rekindle binary; OUT: where the runs go
#   scripts/same-behaviour.sh compare A B      # exit 1 when any summary differs
#
# The pretrained config needs an MAE start: `run` pre-trains one into OUT/pretrain with 200 steps
# (the config's own 3000 take ~8 minutes on 2 cores) and compares its summary too. Needs the
# Fashion-MNIST shards under data/ (see configs/fashion-mnist/dietcl.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."

configs() {
    echo quickstart configs/quickstart.yaml
    for f in configs/fashion-mnist/*.yaml; do echo "$(basename "$f" .yaml)" "$f"; done
}

# Two safetensors files hold the same tensors, bit for bit, and the same metadata (the header's
# key order is not fixed, so the files themselves may differ).
same_tensors() {
    python3 - "$1" "$2" <<'PY'
import json, struct, sys
def load(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n:]
    return meta, {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}
sys.exit(0 if load(sys.argv[1]) == load(sys.argv[2]) else 1)
PY
}

case "${1:-}" in
run)
    bin=$(realpath "$2"); out=$3; mkdir -p "$out"
    configs | while read -r name config; do
        echo "== $name"
        "$bin" train "$config" --out "$out/$name" | tail -1
    done
    "$bin" pretrain configs/fashion-mnist/pretrained/dietcl.yaml --set pretrain.steps=200 --out "$out/pretrain" | tail -1
    "$bin" train configs/fashion-mnist/pretrained/dietcl.yaml --set model.init="$out/pretrain/mae.safetensors" --out "$out/pretrained-dietcl" | tail -1
    ;;
compare)
    status=0
    for dir in "$2"/*/; do
        name=$(basename "$dir")
        a="$2/$name/summary.json"; b="$3/$name/summary.json"
        # The wall time, and the path of the run's own output file (pre-training), may differ.
        strip='del(.wall_seconds) | del(.checkpoint)'
        same_model=true
        if [ -f "$2/$name/mae.safetensors" ]; then
            same_tensors "$2/$name/mae.safetensors" "$3/$name/mae.safetensors" || same_model=false
        fi
        if $same_model && diff <(jq -S "$strip" "$a") <(jq -S "$strip" "$b") >/dev/null; then
            echo "same       $name"
        else
            echo "DIFFERENT  $name"; status=1
        fi
    done
    exit $status
    ;;
*)
    sed -n '2,12p' "$0"; exit 2
    ;;
esac
