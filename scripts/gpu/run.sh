#!/usr/bin/env bash
# The GPU checks, in one command, on a GPU host (CUDA driver and toolkit, PyTorch; no Rust needed):
#
#   bash scripts/gpu/bundle.sh                 # on the build machine: fills gpu-bundle/
#   bash scripts/gpu/run.sh OUT_DIR [PART...]  # on the GPU host, from the repository root
#
# PARTs (all of them, in this order, when none is named; each fits a 10-minute call on an H100):
#   tests      the CUDA backend against the CPU backend op by op (fp32 <= 1e-5, bf16 <= 1e-2), the
#              finite-difference op tests on the GPU (fp32), the whole model against the PyTorch
#              fixtures on the GPU in both precisions, NCCL at world size 1, and the NVRTC + ptxas
#              compile check                                                    -> tests.log
#   sanitizer  compute-sanitizer memcheck and racecheck over the parity and fixture tests
#                                                                               -> sanitizer-*.log
#   kernels    `rekindle bench kernels` (bf16 and fp32) at vit-base-16 shapes against the measured
#              ceilings, the PyTorch counterparts (scripts/gpu/bench_kernels_torch.py), and
#              `rekindle bench all-reduce --device cuda` (NCCL)
#                                              -> kernels-*.json, torch-kernels.json, all-reduce.json
#   steps      `rekindle bench step` at vit-base-16, batch 256: DietCL (40% MAE, 60%
#              classification), classification and MAE in bf16, DietCL in fp32; the PyTorch bf16
#              DietCL step (timm + SDPA), eager and torch.compile    -> step-*.json, torch-step-*.json
#   train      the quickstart (configs/quickstart.yaml) trained on the GPU in fp32 and bf16; its
#              CPU result is A(T-1) 0.2660, average 0.4249                     -> train-*/, train-*.log
# Every run ends with summary.md (scripts/gpu/compare.py: the side-by-side tables) and
# nvidia-smi.txt. The exit status is non-zero if a test, sanitizer or training run failed.
set -uo pipefail
out=${1:?usage: scripts/gpu/run.sh OUT_DIR [tests|sanitizer|kernels|steps|train ...]}
shift
out=$(mkdir -p "$out" && cd "$out" && pwd)
cd "$(dirname "$0")/../.."
bundle=gpu-bundle
[ -f "$bundle/bundle.tar.xz" ] && tar -C "$bundle" -xJf "$bundle/bundle.tar.xz"
[ -x "$bundle/rekindle" ] || { echo "error: $bundle/rekindle missing; run scripts/gpu/bundle.sh on the build machine first" >&2; exit 1; }
export REKINDLE_FIXTURES=$PWD/tests/fixtures
# NCCL and NVRTC from the PyTorch wheels, where the toolkit does not provide them.
py_libs=$(python3 - <<'PY' 2>/dev/null
import importlib, os
dirs = []
for mod in ("nvidia.nccl", "nvidia.cu13", "nvidia.cuda_nvrtc"):
    try:
        m = importlib.import_module(mod)
        for p in getattr(m, "__path__", []):
            if os.path.isdir(os.path.join(p, "lib")):
                dirs.append(os.path.join(p, "lib"))
    except ImportError:
        pass
print(":".join(dirs))
PY
)
export PATH=$PATH:/usr/local/cuda/bin
# cudarc opens NCCL as libnccl.so (or .so.<CUDA major>), but wheels and runtime packages ship only
# libnccl.so.2: give it the name cudarc looks for.
mkdir -p "$bundle/lib"
for dir in ${py_libs//:/ } /usr/lib/x86_64-linux-gnu /usr/local/cuda/lib64; do
  if [ -e "$dir/libnccl.so.2" ] && [ ! -e "$bundle/lib/libnccl.so" ]; then
    ln -s "$dir/libnccl.so.2" "$bundle/lib/libnccl.so"
  fi
done
export LD_LIBRARY_PATH=$PWD/$bundle/lib:${py_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}:/usr/local/cuda/lib64
nvidia-smi > "$out/nvidia-smi.txt" 2>&1

status=0
run() { echo "+ $*" >> "$out/tests.log"; "$@" >> "$out/tests.log" 2>&1 || { echo "FAILED: $*" >> "$out/tests.log"; status=1; }; }

part_tests() {
  for t in compile parity ops pytorch_fixtures nccl; do
    run "$bundle/tests/$t" --nocapture --test-threads 1
  done
}

part_sanitizer() {
  if ! command -v compute-sanitizer >/dev/null 2>&1; then
    echo "compute-sanitizer not found (add the toolkit's bin/ to PATH)" >> "$out/tests.log"
    status=1
    return
  fi
  for tool in memcheck racecheck; do
    for t in parity pytorch_fixtures; do
      compute-sanitizer --tool "$tool" --error-exitcode 9 "$bundle/tests/$t" --test-threads 1 > "$out/sanitizer-$tool-$t.log" 2>&1 \
        || { echo "FAILED: compute-sanitizer $tool $t" >> "$out/tests.log"; status=1; }
    done
  done
}

part_kernels() {
  for precision in bf16 fp32; do
    "$bundle/rekindle" bench kernels --device cuda:0 --precision "$precision" --preset vit-base-16 --batch 64 --json \
      > "$out/kernels-$precision.json" 2> "$out/kernels-$precision.err"
  done
  python3 scripts/gpu/bench_kernels_torch.py --batch 64 > "$out/torch-kernels.json" 2> "$out/torch-kernels.err"
  "$bundle/rekindle" bench all-reduce --device cuda --mbytes 450 --json > "$out/all-reduce.json" 2> "$out/all-reduce.err"
}

part_steps() {
  step() { # NAME PRECISION TASK
    "$bundle/rekindle" bench step --device cuda:0 --precision "$2" --preset vit-base-16 --task "$3" --batch 256 --warmup 2 --iters 10 --json \
      > "$out/step-$1.json" 2> "$out/step-$1.err"
  }
  step dietcl-bf16 bf16 dietcl
  step classify-bf16 bf16 classify
  step mae-bf16 bf16 mae
  step dietcl-fp32 fp32 dietcl
  local torch_step=(python3 scripts/bench_torch.py --device cuda --precision bf16 --preset vit-base-16 --task dietcl --batch 256 --warmup 3 --iters 10 --json)
  "${torch_step[@]}" > "$out/torch-step-dietcl-bf16.json" 2> "$out/torch-step-dietcl-bf16.err"
  timeout 300 "${torch_step[@]}" --compile > "$out/torch-step-dietcl-bf16-compile.json" 2> "$out/torch-step-dietcl-bf16-compile.err"
}

part_train() {
  for precision in fp32 bf16; do
    "$bundle/rekindle" train configs/quickstart.yaml --device cuda:0 --precision "$precision" --out "$out/train-$precision" \
      > "$out/train-$precision.log" 2>&1 || { echo "FAILED: train --precision $precision" >> "$out/tests.log"; status=1; }
    tail -n 2 "$out/train-$precision.log" >> "$out/tests.log"
  done
}

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(tests sanitizer kernels steps train)
for part in "${parts[@]}"; do
  case "$part" in
    tests | sanitizer | kernels | steps | train) "part_$part" ;;
    *) echo "error: unknown part '$part' (tests, sanitizer, kernels, steps, train)" >&2; exit 2 ;;
  esac
done
python3 scripts/gpu/compare.py "$out" > "$out/summary.md" 2>&1
echo "exit $status" >> "$out/tests.log"
tail -n 40 "$out/tests.log"
cat "$out/summary.md"
exit $status
