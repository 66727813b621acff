#!/usr/bin/env bash
# The software GPU's analogues of compute-sanitizer. Runs the op-case table
# (crates/tensor/tests/ops.rs) on the CUDA backend with the kernel twins built under
#   address  AddressSanitizer, like memcheck: out-of-bounds reads and writes of device memory
#            and of __shared__ arrays, use after free;
#   thread   ThreadSanitizer, like racecheck: two threads of a block touching one address with no
#            __syncthreads or __syncwarp between them (crates/gpu-sim/csrc/sanitizer.h).
# Each must pass with no report. Then each must report a bug planted in a copy of kernels/:
# an out-of-bounds read of device memory and an out-of-bounds write of a __shared__ array
# (address), and a removed __syncthreads (thread). A run takes about two minutes on 2 cores.
#
# usage: scripts/gpu-sim-sanitize.sh [--binary OPS_TEST_BINARY] [address] [thread]
#   --binary  the op-case table's test binary (default: built here with cargo)
# Needs g++ with its sanitizer runtimes (libasan, libtsan). Work and logs: target/sanitize/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cargo=${CARGO:-cargo}

binary=""
kinds=()
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    address|thread) kinds+=("$1"); shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-sim-sanitize: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#kinds[@]} -gt 0 ] || kinds=(address thread)
work=$root/target/sanitize
mkdir -p "$work"

if [ -z "$binary" ]; then
  echo "== building the op-case table (crates/tensor/tests/ops.rs)"
  binary=$("$cargo" test --release -p rekindle-tensor --test ops --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import sys, json
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "ops" and m.get("executable"):
        print(m["executable"])')
fi
[ -x "$binary" ] || { echo "gpu-sim-sanitize: no op-case test binary at '$binary'" >&2; exit 1; }

# The software GPU with its twins built under sanitizer $1 from the kernels in $2, in its own
# target directory $3 (so the plain build is left alone); prints its library directory.
build_sim() {
  REKINDLE_SIM_SANITIZE=$1 REKINDLE_SIM_KERNELS_DIR=$2 \
    "$cargo" build --release --quiet -p rekindle-gpu-sim --target-dir "$3" >&2
  "$3/release/gpu-sim" --dir
}

# Runs the op-case table (tests matching $3, all if empty) under sanitizer $1 on the sim in $2,
# output to $4; returns its exit status. The sanitizer test itself is skipped: it is what runs
# this script.
run_ops() {
  local runtime
  runtime=$(g++ -print-file-name=lib${1:0:1}san.so)
  [ -f "$runtime" ] || { echo "gpu-sim-sanitize: g++ has no $1 sanitizer runtime (lib${1:0:1}san.so)" >&2; exit 1; }
  # ignore_noninstrumented_modules: only the twins are instrumented; the test harness's own
  # threads synchronise in ways TSan cannot see.
  LD_PRELOAD=$runtime LD_LIBRARY_PATH=$2 REKINDLE_REQUIRE_CUDA=1 \
    ASAN_OPTIONS=detect_leaks=0 TSAN_OPTIONS=ignore_noninstrumented_modules=1 \
    "$binary" --skip sanitizers ${3:+"$3"} >"$4" 2>&1
}

# A fresh copy of kernels/ in $1, to plant bugs in.
fresh_copy() {
  rm -rf "$1" && cp -r "$root/kernels" "$1"
}

# Plants a bug: applies the perl substitution $3 to $1/$2; fails if it matched nothing (the
# bug's context moved in kernels/, and this script needs updating).
plant() {
  local before
  before=$(cksum <"$1/$2")
  perl -0pi -e "$3" "$1/$2"
  if [ "$(cksum <"$1/$2")" = "$before" ]; then
    echo "gpu-sim-sanitize: the planted bug '$3' no longer matches kernels/$2; update this script" >&2
    exit 1
  fi
}

fail() {
  echo "gpu-sim-sanitize: $1 (log: $2)" >&2
  tail -40 "$2" >&2
  exit 1
}

# Checks that the run logged in $1 reported $2 with $3 in the report.
expect_report() {
  grep -q "$2" "$1" || fail "the planted bug was not reported as '$2'" "$1"
  grep -q "$3" "$1" || fail "the report does not name '$3'" "$1"
  echo "   reported: $(grep -m1 'SUMMARY' "$1" | cut -c1-160)"
}

for kind in "${kinds[@]}"; do
  start=$SECONDS
  echo "== $kind: the op-case table on the sim built under the sanitizer"
  lib=$(build_sim "$kind" "$root/kernels" "$work/$kind")
  log=$work/$kind.log
  run_ops "$kind" "$lib" "" "$log" || fail "the op-case table failed under $kind" "$log"
  if grep -q "ERROR: AddressSanitizer\|WARNING: ThreadSanitizer" "$log"; then fail "$kind reported a bug in the kernels" "$log"; fi
  echo "   $(grep 'test result' "$log")"

  planted=$work/planted-$kind
  fresh_copy "$planted"
  if [ "$kind" = address ]; then
    echo "== address: planted out-of-bounds read (layernorm_forward) and __shared__ write (attention_backward_dkv)"
    plant "$planted" layernorm.cu 's/for \(int j = lane; j < width; j \+= 32\) s \+= ld/for (int j = lane; j <= width; j += 32) s += ld/'
    plant "$planted" attention.cu 's/for \(int r = threadIdx\.x; r < TILE; r \+= blockDim\.x\)/for (int r = threadIdx.x; r <= TILE; r += blockDim.x)/'
    lib=$(build_sim address "$planted" "$work/address-planted")
    run_ops address "$lib" layernorm "$work/address-planted-read.log" || true
    expect_report "$work/address-planted-read.log" "AddressSanitizer: heap-buffer-overflow" "in layernorm_forward"
    run_ops address "$lib" attention "$work/address-planted-shared.log" || true
    expect_report "$work/address-planted-shared.log" "AddressSanitizer: global-buffer-overflow" "global variable 'lses'"
  else
    echo "== thread: planted missing __syncthreads (for_each_key in attention.cu)"
    plant "$planted" attention.cu 's/(\n {8}\}\n) {8}__syncthreads\(\);\n( {8}int count = min\(TILE, s\.T - start\);)/$1$2/'
    lib=$(build_sim thread "$planted" "$work/thread-planted")
    run_ops thread "$lib" attention "$work/thread-planted.log" || true
    expect_report "$work/thread-planted.log" "ThreadSanitizer: data race" "in for_each_key"
  fi
  echo "   $kind done in $((SECONDS - start)) s"
done
echo "gpu-sim-sanitize: ${kinds[*]}: the kernels are clean, and every planted bug was reported"
