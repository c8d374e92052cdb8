#!/usr/bin/env bash
# Set up (if needed), render the built-in demo room, train diffnerf on it, evaluate, export a point cloud and a mesh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
OUT=${OUT:-outputs/demo}
ITERS=${ITERS:-600}
.venv/bin/diffnerf-make-demo --out "$OUT/scene" --num-frames 48 --width 160 --height 120
.venv/bin/ns-train diffnerf --data "$OUT/scene" --output-dir "$OUT/runs" --timestamp demo --vis tensorboard \
  --max-num-iterations "$ITERS" --steps-per-save "$ITERS" --steps-per-eval-all-images 100000 \
  --pipeline.datamanager.train-num-rays-per-batch 1024 \
  --pipeline.model.log2-hashmap-size 17 --pipeline.model.num-levels 12 --pipeline.model.max-res 512 \
  2>&1 | tee "$OUT/train.log" | grep --line-buffered -E "^[0-9]+ \(|Training Finished|Error"
CONFIG="$OUT/runs/scene/diffnerf/demo/config.yml"
.venv/bin/ns-eval --load-config "$CONFIG" --output-path "$OUT/eval.json"
.venv/bin/ns-export pointcloud --load-config "$CONFIG" --output-dir "$OUT/export" --num-points 100000 \
  --num-rays-per-batch 4096
.venv/bin/diffnerf-export-mesh --load-config "$CONFIG" --output-dir "$OUT/export" > "$OUT/export_mesh.log" 2>&1 \
  || { tail -n 20 "$OUT/export_mesh.log"; exit 1; }
echo "iterations: $ITERS; seconds per iteration (nerfstudio profiler):" \
  "$(grep -o 'Trainer.train_iteration: [0-9.]*' "$OUT/train.log" | awk '{print $2}')"
.venv/bin/python -c "import json,sys; r=json.load(open(sys.argv[1]))['results']; \
print('held-out views:', ', '.join(f'{k}={r[k]:.4f}' for k in ('psnr','ssim','depth_abs_rel','depth_rmse','depth_delta1')))" \
  "$OUT/eval.json"
echo "point cloud: $OUT/export/point_cloud.ply"
.venv/bin/python scripts/cloud_accuracy.py --cloud "$OUT/export/point_cloud.ply" \
  --run-dir "$OUT/runs/scene/diffnerf/demo" --scene "$OUT/scene"
grep "^mesh:" "$OUT/export_mesh.log"
.venv/bin/python scripts/mesh_accuracy.py --mesh "$OUT/export/mesh.ply" --scene "$OUT/scene"
