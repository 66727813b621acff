#!/usr/bin/env bash
# The DietCL comparison of docs/RESULTS.md ("DietCL from a shared MAE-pretrained start"):
# every strategy from the same pretrained ViT, equal budgets, seeds 0-2, labels at 1% and 5%.
#   bash scripts/experiments/dietcl-pretrained.sh sweep     # the LR search, the same for every method
#   bash scripts/experiments/dietcl-pretrained.sh compare   # 3 seeds x 2 label rates x 6 methods
#   bash scripts/experiments/dietcl-pretrained.sh weights   # DietCL at MAE weights 1 and 5 (1% labels, 3 seeds)
#   bash scripts/experiments/dietcl-pretrained.sh scratch   # ER and DietCL from a random init (what the start is worth)
#   bash scripts/experiments/dietcl-pretrained.sh report    # the tables and plots
# Needs the shards and runs/fashion-mnist-pretrain/mae.safetensors (see the config's header).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${REKINDLE:-target/release/rekindle}
config=configs/fashion-mnist/pretrained/dietcl.yaml
out=runs/dietcl-pretrained
# name and overrides of each method; dietcl-w0 is DietCL without the MAE term.
methods=(
  "dietcl|strategy.name=dietcl"
  "dietcl-w0|strategy.name=dietcl strategy.mae_weight=0"
  "er|strategy.name=er"
  "finetune|strategy.name=finetune"
  "mae-then-finetune|strategy.name=mae-then-finetune"
  "joint|strategy.name=joint"
)
run() { # name, dir, overrides...
  local dir=$1; shift
  [ -f "$dir/summary.json" ] && return 0
  local sets=()
  for kv in "$@"; do sets+=(--set "$kv"); done
  # A point that was stopped continues (a directory holds one run: it is not started afresh).
  local where=(--out "$dir")
  [ -f "$dir/config.yaml" ] && where=(--resume "$dir")
  "$bin" train "$config" "${sets[@]}" --set strategy.term_norms_every=10 "${where[@]}" > "$dir.log" 2>&1 || { echo "failed: $dir (see $dir.log)"; return 1; }
  grep final "$dir.log"
}
# Each method runs at the LR of its best sweep run (final A(T-1), seed 0, 1% labels).
best_lr() {
  python3 -c 'import json,sys
runs=[(json.load(open(d+"summary.json"))["final_accuracy"],d.rsplit("-lr",1)[1].rstrip("/")) for d in sys.argv[1:]]
print(max(runs)[1])' "$out"/sweep-"$1"-lr*/
}
mkdir -p "$out"
case "${1:-}" in
  sweep)
    for m in "${methods[@]}"; do
      name=${m%%|*}; sets=${m#*|}
      for lr in 1.0e-4 1.0e-3 3.0e-3; do
        run "$out/sweep-$name-lr$lr" $sets optim.lr=$lr stream.label_rate=0.01 seed=0
      done
    done ;;
  compare)
    for rate in 0.01 0.05; do
      for seed in 0 1 2; do
        for m in "${methods[@]}"; do
          name=${m%%|*}; sets=${m#*|}
          lr=$(best_lr "$name")
          run "$out/$name-labels$rate-seed$seed" $sets optim.lr=$lr stream.label_rate=$rate seed=$seed
        done
      done
    done ;;
  weights)
    lr=$(best_lr dietcl)
    for seed in 0 1 2; do
      for w in 1 5; do
        run "$out/dietcl-w$w-labels0.01-seed$seed" strategy.name=dietcl strategy.mae_weight=$w optim.lr=$lr stream.label_rate=0.01 seed=$seed
      done
    done ;;
  scratch)
    for seed in 0 1 2; do
      for name in er dietcl; do
        run "$out/$name-scratch-labels0.01-seed$seed" strategy.name=$name model.init=null optim.lr=$(best_lr "$name") stream.label_rate=0.01 seed=$seed
      done
    done ;;
  report)
    "$bin" report "$out"/sweep-*/ --plot docs/results-dietcl-sweep.png --markdown "$out/sweep.md"
    "$bin" report "$out"/dietcl-labels0.01-seed*/ "$out"/dietcl-w*-labels0.01-seed*/ --plot docs/results-dietcl-mae-weight.png --markdown "$out/weights.md"
    "$bin" report "$out"/{er,dietcl}-labels0.01-seed*/ "$out"/*-scratch-labels0.01-seed*/ --plot "$out/scratch.png" --markdown "$out/scratch.md"
    for rate in 0.01 0.05; do
      dirs=()
      for m in "${methods[@]}"; do dirs+=("$out/${m%%|*}-labels$rate-seed"*/); done
      "$bin" report "${dirs[@]}" --plot docs/results-dietcl-pretrained-labels$rate.png --markdown "$out/labels$rate.md"
    done ;;
  *) echo "usage: $0 sweep|compare|weights|scratch|report" >&2; exit 2 ;;
esac
