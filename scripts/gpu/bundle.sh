#!/usr/bin/env bash
# Builds everything the GPU checks run into gpu-bundle/bundle.tar.xz (git-ignored), for a GPU host that has
# CUDA and PyTorch but no Rust toolchain. Then, on that host, from a copy of this repository with
# gpu-bundle/ beside it:
#
#   bash scripts/gpu/run.sh OUT_DIR
#
# The binaries are built with `--features cuda` only: MPI is not needed for these checks, and the
# GPU host need not have it.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf gpu-bundle
mkdir -p gpu-bundle/tests
cargo build --release --features cuda
cp target/release/rekindle gpu-bundle/
# Each integration test binary with a GPU part, found from cargo's build messages.
cargo test --release --workspace --features cuda --no-run --message-format=json \
  | python3 -c '
import json, shutil, sys
wanted = {"parity", "ops", "pytorch_fixtures", "nccl", "compile"}
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"] and m["target"]["name"] in wanted:
        shutil.copy(m["executable"], "gpu-bundle/tests/" + m["target"]["name"])
        print("bundled", m["target"]["name"])
'
# Without debug info and compressed, the bundle fits a device tool's transfer limit (64 MiB).
strip gpu-bundle/rekindle gpu-bundle/tests/*
tar -C gpu-bundle -cJf gpu-bundle.tar.xz rekindle tests
rm -rf gpu-bundle/rekindle gpu-bundle/tests
mv gpu-bundle.tar.xz gpu-bundle/bundle.tar.xz
ls -la gpu-bundle
