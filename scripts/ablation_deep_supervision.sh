#!/usr/bin/env bash
# Issue 38's ablation: Dice & CE and CLoss fine-tuned with each deep-supervision head's loss at its own resolution
# (deep_supervision_resolution=own) from the same pretrained checkpoints and data as the full-resolution run
# outputs/comparison_roads_2d (contextloss benchmark --bundle roads_2d --out outputs/comparison_roads_2d --folds 0 1 2
# --methods dice_ce context --gammas 0.2 --restricted hadamard), then both compared image by image.
# About 14 minutes per fold on a 2-core CPU. Usage: bash scripts/ablation_deep_supervision.sh [full run] [own run]
set -euo pipefail
src=${1:-outputs/comparison_roads_2d}
dst=${2:-outputs/ablation_own_roads_2d}
mkdir -p "$dst"
[ -d "$dst/data" ] || cp -r "$src/data" "$dst/"
for f in 0 1 2; do  # the pretraining and its evaluation are shared: only the fine-tuning differs
    mkdir -p "$dst/fold$f/models" "$dst/fold$f/logs" "$dst/fold$f/eval"
    cp -n "$src/fold$f/models/pretrained.pt" "$dst/fold$f/models/"
    cp -rn "$src/fold$f/logs/pretrain" "$src/fold$f/logs/evaluate_pretrained" "$src/fold$f/logs/naming.json" "$dst/fold$f/logs/"
    cp -rn "$src/fold$f/eval/pretrained" "$dst/fold$f/eval/"
done
contextloss benchmark --bundle roads_2d --out "$dst" --data "$dst/data" --folds 0 1 2 --methods dice_ce context --gammas 0.2 \
    --restricted hadamard --override deep_supervision_resolution=own
contextloss compare-runs "$src" "$dst"
