#!/usr/bin/env bash
# The main job end to end on generated data (no downloads):
#   generated dataset A -> backbone trained from scratch -> generated dataset B (other classes)
#   -> head-only transfer on the frozen backbone -> eval -> export MINDIR/ONNX
#   -> convert to .ms (fp32/fp16/int8 weights/full int8, each verified) -> classify images through the runtime
#   -> latency table across the engines available here.
# Usage: bash scripts/demo.sh [OUT_DIR]      (default demo_out/; re-running reuses the venv)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh "train,onnx,dev"
OUT="${1:-demo_out}"
rm -rf "$OUT"; mkdir -p "$OUT"
step() { printf '\n=== %s ===\n' "$*"; }
SIZE=64; WIDTH=0.5

step "1. Generate two different datasets (different classes, shapes, textures and colours)"
toolkit make-dataset "$OUT/data/pretrain" --classes 6 --per-class 50 --size 64 --seed 1 --variant 0
toolkit make-dataset "$OUT/data/target" --classes 4 --per-class 50 --size 64 --seed 2 --variant 1

step "2. Train a small MobileNetV2 backbone from scratch on dataset A"
toolkit train-head "$OUT/data/pretrain" --out "$OUT/runs/pretrain" --mode scratch --width $WIDTH \
  --image-size $SIZE --epochs 6 --batch-size 16 --lr-max 0.02 --warmup-epochs 1

step "3. Head-only transfer to dataset B on the frozen backbone (features cached, onnxruntime extraction)"
toolkit train-head "$OUT/data/target" --out "$OUT/runs/head" --mode head \
  --pretrained "$OUT/runs/pretrain/best.ckpt" --width $WIDTH --image-size $SIZE --epochs 30 \
  --batch-size 16 --lr-max 0.1 --save-fp16

step "4. Evaluate (top-1, per-class, confusion matrix)"
toolkit eval "$OUT/data/target" --run "$OUT/runs/head"

step "5. Export MINDIR and ONNX (BatchNorm folded; each file carries its own metadata)"
toolkit export "$OUT/runs/head" --format mindir --out "$OUT/model/model.mindir"
toolkit export "$OUT/runs/head" --format onnx --out "$OUT/model/model.onnx"

step "6. Convert to MindSpore Lite .ms: fp32, fp16 and int8 weights, each verified against the MINDIR"
VAL="$OUT/data/target/val"
toolkit convert "$OUT/model/model.mindir" -o "$OUT/model/model.ms" --verify 40 --images "$VAL"
toolkit convert "$OUT/model/model.mindir" -o "$OUT/model/model_fp16.ms" --fp16 --verify 40 --images "$VAL"
toolkit convert "$OUT/model/model.mindir" -o "$OUT/model/model_int8.ms" --quant weight --verify 40 --images "$VAL"
toolkit inspect "$OUT/model/model_int8.ms"

step "6b. Full int8: weights and activations, calibrated on the training images, verified on the validation images"
toolkit convert "$OUT/model/model.mindir" -o "$OUT/model/model_int8_full.ms" --quant full \
  --calib "$OUT/data/target/train" --verify 40 --images "$VAL"

step "7. Classify a few images on the device runtime with the converted .ms"
first_images=$(for d in "$VAL"/*/; do ls "$d"* | head -n 1; done)
toolkit predict "$OUT/model/model.ms" $first_images --top-k 2 --grid "$OUT/predictions.png"

step "8. Latency and accuracy of every engine available here (one process per row; absent devices listed)"
toolkit bench "$OUT/model/model.mindir" "$OUT/model/model.onnx" "$OUT/model/model.ms" \
  "$OUT/model/model_fp16.ms" "$OUT/model/model_int8.ms" "$OUT/model/model_int8_full.ms" --threads 2 --warmup 2 --min-time 0.5 \
  --data "$VAL" --reference mindspore --markdown "$OUT/bench.md" --plot "$OUT/bench.png" --json "$OUT/bench.json"

step "Done"
echo "val accuracy of the transferred head: see step 4; models in $OUT/model, predictions grid $OUT/predictions.png, bench table $OUT/bench.md"
