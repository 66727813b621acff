#!/usr/bin/env bash
# The DietCL comparison of docs/RESULTS.md ("DietCL from a shared MAE-pretrained start"):
# every strategy from the same pretrained ViT, equal budgets, seeds 0-2, labels at 1% and 5%.
#   bash scripts/experiments/dietcl-pretrained.sh sweep     # the LR search, the same for every method
#   bash scripts/experiments/dietcl-pretrained.sh compare   # 3 seeds x 2 label rates x 6 methods
#   bash scripts/experiments/dietcl-pretrained.sh weights   # DietCL at MAE weights 1 and 5 (1% labels, 3 seeds)
#   bash scripts/experiments/dietcl-pretrained.sh scratch   # ER and DietCL from a random init (what the start is worth)
#   bash scripts/experiments/dietcl-pretrained.sh report    # the tables and plots
# Each set is one `rekindle sweep` per method into runs/dietcl-pretrained/SET/KEY=VALUE,.../:
# run again, it skips finished points and resumes stopped ones. Arguments after the set go to
# every sweep (e.g. `compare --jobs 2`, or `compare --sbatch` for Slurm array jobs).
# Needs the shards and runs/fashion-mnist-pretrain/mae.safetensors (see the config's header).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${REKINDLE:-target/release/rekindle}
config=configs/fashion-mnist/pretrained/dietcl.yaml
out=runs/dietcl-pretrained
set=${1:-}
shift || true
# name and overrides of each method; dietcl-w0 is DietCL without the MAE term.
methods=(
  "dietcl|strategy.name=dietcl"
  "dietcl-w0|strategy.name=dietcl strategy.mae_weight=0"
  "er|strategy.name=er"
  "finetune|strategy.name=finetune"
  "mae-then-finetune|strategy.name=mae-then-finetune"
  "joint|strategy.name=joint"
)
sweep() { # directory under $out, then KEY=VALUE or KEY=A,B,... overrides
  local dir=$1 sets=()
  shift
  for kv in "$@" strategy.term_norms_every=10; do sets+=(--set "$kv"); done
  "$bin" sweep "$config" "${sets[@]}" --out "$out/$dir" "${extra[@]}"
}
extra=("$@")
# Each method runs at the LR of its best point of the LR search (final A(T-1), seed 0, 1% labels).
best_lr() {
  python3 -c 'import json,sys
runs=[(json.load(open(d+"summary.json"))["final_accuracy"],d.rsplit("optim.lr=",1)[1].rstrip("/")) for d in sys.argv[1:]]
print(max(runs)[1])' "$out/lr-$1"/optim.lr=*/
}
case "$set" in
  sweep) for m in "${methods[@]}"; do sweep "lr-${m%%|*}" ${m#*|} optim.lr=1.0e-4,1.0e-3,3.0e-3 stream.label_rate=0.01 seed=0; done ;;
  compare) for m in "${methods[@]}"; do sweep "${m%%|*}" ${m#*|} optim.lr="$(best_lr "${m%%|*}")" stream.label_rate=0.01,0.05 seed=0,1,2; done ;;
  weights) sweep dietcl-weights strategy.name=dietcl strategy.mae_weight=1,5 optim.lr="$(best_lr dietcl)" stream.label_rate=0.01 seed=0,1,2 ;;
  scratch) for m in er dietcl; do sweep "$m-scratch" strategy.name=$m model.init=null optim.lr="$(best_lr $m)" stream.label_rate=0.01 seed=0,1,2; done ;;
  report)
    at() { for m in "$@"; do printf '%s\n' "$out/$m/stream.label_rate=$rate,seed="*/; done; }
    rate=0.01
    "$bin" report "$out"/lr-*/optim.lr=*/ --plot docs/results-dietcl-sweep.png --markdown "$out/sweep.md"
    "$bin" report $(at dietcl dietcl-w0) "$out"/dietcl-weights/*/ --plot docs/results-dietcl-mae-weight.png --markdown "$out/weights.md"
    "$bin" report $(at er dietcl) "$out"/*-scratch/*/ --plot "$out/scratch.png" --markdown "$out/scratch.md"
    for rate in 0.01 0.05; do
      "$bin" report $(at "${methods[@]%%|*}") --plot docs/results-dietcl-pretrained-labels$rate.png --markdown "$out/labels$rate.md"
    done ;;
  *) echo "usage: $0 sweep|compare|weights|scratch|report [rekindle sweep arguments...]" >&2; exit 2 ;;
esac
