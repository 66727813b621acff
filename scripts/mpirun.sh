#!/usr/bin/env bash
# Data-parallel training on one machine (or hosts from MPIRUN_ARGS="--hostfile FILE"):
#
#   scripts/mpirun.sh RANKS CONFIG.yaml [rekindle train arguments...]
#   scripts/mpirun.sh 2 configs/quickstart.yaml --out runs/quickstart-2ranks
#
# Each rank trains on a disjoint part of every effective batch, and the gradients are summed once
# per optimizer step; the effective batch, and so the results, do not depend on RANKS. Rank 0
# writes the run directory. Build first: cargo build --release --features mpi
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
ranks=$1
shift
bin=${REKINDLE_BIN:-target/release/rekindle}
if [ ! -x "$bin" ]; then
  echo "error: $bin not found; build it with: cargo build --release --features mpi (or set REKINDLE_BIN)" >&2
  exit 1
fi
# Open MPI pins each rank to one core by default; rekindle runs its own threads (the node's cores
# shared among its ranks), so leave placement to it.
args=(-np "$ranks" --bind-to none)
[ "$(id -u)" = 0 ] && args+=(--allow-run-as-root)
# shellcheck disable=SC2086 # MPIRUN_ARGS holds several arguments on purpose.
exec mpirun "${args[@]}" ${MPIRUN_ARGS:-} "$bin" train "$@"
