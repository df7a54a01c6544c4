#!/usr/bin/env bash
# The README's nnU-Net flow as a quick pass on a CPU: synthetic roads (128²), nnU-Net's plan and preprocess,
# 5 epochs of nnU-Net's Dice & CE pretraining (nnUNetTrainer_5epochs), 1 epoch of CLoss fine-tuning from that
# checkpoint (nnUNetTrainerCLoss_1epoch), predictions of both, the topological post-processing and the
# evaluation of the pretrained and the post-processed fine-tuned predictions.
# Needs the nnunet extra (docs/nnunet.md). Usage: bash scripts/nnunet_quick.sh [work folder] [device]
set -euo pipefail
work=${1:-outputs/nnunet_quick}
device=${2:-cpu}
mkdir -p "$work"
cd "$work"
export nnUNet_raw=$PWD/nnunet/raw nnUNet_preprocessed=$PWD/nnunet/preprocessed nnUNet_results=$PWD/nnunet/results
start=$(date +%s)
step() { echo "nnunet_quick: $1 done after $(( $(date +%s) - start )) s"; }
contextloss make-synthetic --kind roads --out data/roads --size 128 --overwrite
contextloss nnunet convert data/roads --nnunet-raw "$nnUNet_raw" --id 501 --overwrite
nnUNetv2_plan_and_preprocess -d 501 -c 2d --verify_dataset_integrity
step "plan and preprocess"
contextloss nnunet train 501 2d 0 -tr nnUNetTrainer_5epochs -device "$device"
step "pretraining"
results=$nnUNet_results/Dataset501_synthetic_roads
contextloss nnunet train 501 2d 0 -tr nnUNetTrainerCLoss_1epoch -device "$device" \
    -pretrained_weights "$results/nnUNetTrainer_5epochs__nnUNetPlans__2d/fold_0/checkpoint_final.pth"
step "CLoss fine-tuning"
tests=$nnUNet_raw/Dataset501_synthetic_roads
contextloss nnunet predict -i "$tests/imagesTs" -o pred_pretrained -d 501 -c 2d -f 0 -tr nnUNetTrainer_5epochs -device "$device"
contextloss nnunet predict -i "$tests/imagesTs" -o pred_closs -d 501 -c 2d -f 0 -tr nnUNetTrainerCLoss_1epoch -device "$device"
contextloss nnunet postprocess --finetuned pred_closs --pretrained pred_pretrained --out pred_closs_topo
for name in pretrained closs_topo; do
    contextloss nnunet evaluate --pred "pred_$name" --labels "$tests/labelsTs" --out "eval_$name" > /dev/null
done
step "prediction, post-processing and evaluation"
python - <<'PY'
import json
for name in ("pretrained", "closs_topo"):
    m = json.load(open(f"eval_{name}/summary.json"))["metrics"]
    print(f"{name:>12}: " + ", ".join(f"{k} {m[k]['mean']:.4g}" for k in ("dice", "cldice", "ags", "e0_gt", "betti_e0", "betti_e1")))
PY
