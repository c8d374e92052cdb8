#!/usr/bin/env bash
# Everything only a GPU shows, in ONE device call. Needs wheelhouse/ (scripts/build_wheelhouse.sh) and
# gpu_data/ (scripts/prepare_gpu_data.sh), both git-ignored and carried:
#
#   run(command="bash benchmarks/gpu_session.sh", carry=["wheelhouse", "gpu_data"], timeout_s=600)
#   bash benchmarks/gpu_session.sh --smoke      # here, CPU: tiny sizes, same steps and paths (~5 min)
#
# Times are counted from this script's start against BUDGET_S (585 s: the call's limit is 600 s). Training
# owns at least 6 minutes; every other step has a cap, and a failed or cut step never stops the next:
#   0  install the carried wheels into /tmp/site (the image's CUDA torch untouched) and import-check: fails fast
#   1  render the training corpus (640x480, one thread per worker) in the background; meanwhile, on the GPU:
#   2  hash-grid kernels alone (fused Triton vs torch grid, fwd and fwd+bwd, 2^18..2^20 points, do_bench)
#   3  train the prior until the absolute deadline TRAIN_END_S (6 of the 10 minutes), saving the fp16 EMA
#      prior every 60 s, continuing from the repository's prior (SUN3D alone if the corpus did not finish;
#      once more without channels_last if it fails at start-up); the demo scene for step 6 renders meanwhile
#   4  fit its interval scale on corpus rooms no benchmark scores (benchmarks/calibrate_prior.py), then refine
#      held-out corpus rooms + real frames with it (s per 640x480 frame on the GPU, coverage)
#   5  diffnerf-no-prior end to end at 8192 rays, fused grid then torch grid
#   6  the prior's training step alone at batch 64/256/512 (the same-card baseline for patches/s), if time is left
# $OUT gets back (at most 8 files): session.log, reports.tar (every report, re-packed after each step) and
# the newest prior as prior.tar.part-* (15 MB pieces: `cat prior.tar.part-* | tar -x` gives default_prior/),
# packed after training and again by the EXIT trap. `python -m benchmarks.ship_prior` takes them from there.
set -uo pipefail
cd "$(dirname "$0")/.."

SMOKE=0 INSTALL=1
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    --no-install) INSTALL=0 ;;  # the audit run of scripts/build_wheelhouse.sh: use the current environment
    *) echo "gpu_session.sh: unknown argument $arg (use --smoke, --no-install)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
OUT=${OUT:-outputs/gpu_session_smoke}
WORK=${WORK:-/tmp/gpu_session}
BUDGET_S=${BUDGET_S:-585}
TRAIN_END_S=${TRAIN_END_S:-445}  # the loop's deadline; its last save and the exit come right after
FIXTURES=gpu_data/fixtures
REPORTS=$WORK/reports
mkdir -p "$OUT" "$WORK" "$REPORTS"
rm -rf "$OUT"/prior.tar.part-* "$OUT/reports.tar" "$WORK/default_prior" "$REPORTS"/*  # nothing stale
LOG=$OUT/session.log
: >"$LOG"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg TQDM_MININTERVAL=10  # a bar line per 10 s in the log
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
T0=$SECONDS
START_EPOCH=$(date +%s)
SUMMARY=()
BACKGROUND=()

note() { echo "[gpu_session +$((SECONDS - T0))s] $*" | tee -a "$LOG"; }
left() { echo $((BUDGET_S - (SECONDS - T0))); }
pack_reports() { tar -C "$WORK" -cf "$OUT/reports.tar.tmp" reports 2>/dev/null && mv "$OUT/reports.tar.tmp" "$OUT/reports.tar"; }
pack_prior() {  # the newest complete save (train.py swaps each save in whole)
  [ -f "$WORK/default_prior/unet/diffusion_pytorch_model.safetensors" ] || return 0
  rm -f "$OUT"/prior.tar.part-*
  tar -C "$WORK" --exclude=checkpoints -cf - default_prior | split -b 15m - "$OUT/prior.tar.part-"
  note "prior packed: $(du -cb "$OUT"/prior.tar.part-* | tail -1 | cut -f1) bytes, $(ls "$OUT"/prior.tar.part-* | wc -l) parts"
}
# step NAME CAP_S RESERVE_S CMD...: run with a time cap (cut so RESERVE_S stay for later steps), log everything,
# record rc and seconds, re-pack the reports; never exits the script.
step() {
  local name=$1 cap=$2 reserve=$3 start=$SECONDS rc room
  shift 3
  room=$(($(left) - reserve))
  [ "$room" -lt "$cap" ] && cap=$room
  if [ "$cap" -lt 15 ]; then
    SUMMARY+=("$name: skipped, ${room} s left before the later steps' reserve")
    note "step $name skipped: ${room} s left before the later steps' reserve"
    return 1
  fi
  note "step $name (cap ${cap}s): $*"
  timeout --kill-after=10 "$cap" "$@" >>"$LOG" 2>&1
  rc=$?
  [ $rc -eq 124 ] && note "step $name hit its ${cap}s cap"
  SUMMARY+=("$name: rc $rc, $((SECONDS - start)) s")
  note "step $name: rc $rc after $((SECONDS - start)) s"
  pack_reports
  return $rc
}
finish() {
  for pid in "${BACKGROUND[@]}"; do kill "$pid" 2>/dev/null; done
  pack_prior
  cp "$LOG" "$REPORTS/" 2>/dev/null
  pack_reports
  note "summary (total $((SECONDS - T0)) s):"
  printf '  %s\n' "${SUMMARY[@]}" | tee -a "$LOG"
  for f in "$REPORTS"/*.md; do [ -f "$f" ] && { echo "=== $(basename "$f")"; cat "$f"; }; done
  ls -l "$OUT"
}
trap finish EXIT

[ -d "$FIXTURES" ] || note "no $FIXTURES (scripts/prepare_gpu_data.sh): SUN3D and real frames are skipped"
if [ $SMOKE -eq 1 ]; then
  BUDGET_S=3000 TRAIN_END_S=2000
  CORPUS_ARGS=(--num-rooms 2 --views-per-room 2 --width 160 --height 120 --workers 2)
  SMOKE_ARG=(--smoke)
  TRAIN_ARGS=(--smoke --num-workers 2 --minutes 0.3)
  REFINE_ARGS=(--synthetic-frames 1 --sun3d-frames 1 --sampling.steps 2 --sampling.samples 2 --sampling.overlap 2
    --threads 2)
  E2E_ARGS=(--smoke)
  CAL_ARGS=(--frames 1 --width 160 --height 120 --sampling.steps 2 --sampling.samples 2 --sampling.overlap 2
    --threads 2)
  CAL_CAP=400 REFINE_CAP=400 E2E_CAP=400
else
  CORPUS_ARGS=(--num-rooms 32 --views-per-room 6 --width 640 --height 480 --workers $(($(nproc) - 2)))
  SMOKE_ARG=()
  TRAIN_ARGS=(--num-workers $(($(nproc) - 4)) --minutes 9)
  REFINE_ARGS=(--synthetic-frames 2 --sun3d-frames 2 --threads 4)
  E2E_ARGS=(--iterations 80 --warmup 15)
  CAL_ARGS=(--frames 8 --threads 4)
  CAL_CAP=45 REFINE_CAP=45 E2E_CAP=105
fi

# 0. Wheels and imports.
if [ $INSTALL -eq 1 ]; then
  [ -d wheelhouse ] || { note "FATAL: no wheelhouse/ (run scripts/build_wheelhouse.sh and carry it)"; exit 3; }
  if [ $SMOKE -eq 1 ]; then  # unpack for the device's Python, off this interpreter's path: proves the set installs
    step install 90 0 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --target "$WORK/site" wheelhouse/*.whl \
      || { note "FATAL: the wheelhouse does not install"; exit 3; }
  else
    step install 90 0 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site wheelhouse/*.whl || { note "FATAL: the wheelhouse does not install"; exit 3; }
    export PYTHONPATH=$PYTHONPATH:/tmp/site  # before site-packages: the wheelhouse holds only what the image lacks
  fi
fi
step imports 90 0 "$PY" -m benchmarks.gpu_session_check "${SMOKE_ARG[@]}" \
  || { note "FATAL: imports failed (see above); nothing else can run"; exit 4; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$LOG" 2>&1 || true

# 1. Corpus, in the background on the CPU (one thread per worker process: 16 workers x 16 OpenMP threads
#    each made an earlier session's render ~5x slower than its cores allow).
note "corpus render started: ${CORPUS_ARGS[*]}"
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 timeout 110 \
  "$PY" -m benchmarks.train_default_prior render --out "$WORK/corpus_train" "${CORPUS_ARGS[@]}" >>"$LOG" 2>&1 &
CORPUS_PID=$!
BACKGROUND+=("$CORPUS_PID")

# 2. Kernels alone, while the corpus renders.
step hashgrid_kernels 45 400 "$PY" -m benchmarks.bench_hashgrid_gpu kernels "${SMOKE_ARG[@]}" \
  --out "$REPORTS/hashgrid_kernels_gpu.md"
wait "$CORPUS_PID"
note "corpus render: rc $? ($(find "$WORK/corpus_train" -name '*.npz' 2>/dev/null | wc -l) rooms)"
# The end-to-end bench's scene renders on the CPU while the prior trains (step 6 would otherwise spend ~20 s).
if [ $SMOKE -eq 1 ]; then SCENE=(demo_smoke 16 64 48); else SCENE=(demo_640x480 48 640 480); fi
OMP_NUM_THREADS=1 "$PY" -c "import sys; from pathlib import Path; from data_converters.synthetic.demo_scene import make_demo_scene
make_demo_scene(Path(sys.argv[1]), num_frames=int(sys.argv[2]), width=int(sys.argv[3]), height=int(sys.argv[4]))" \
  "$WORK/hashgrid/${SCENE[0]}" "${SCENE[@]:1}" >>"$LOG" 2>&1 &
BACKGROUND+=($!)

# 3. The prior, until the deadline, continuing from the repository's prior (the package's, else
#    benchmarks/prior_checkpoint/) with its step count; `python -m benchmarks.ship_prior` keeps what returns.
DATA_ARGS=()
[ -f "$WORK/corpus_train/corpus.json" ] && DATA_ARGS+=(--corpus "$WORK/corpus_train")
[ -d "$FIXTURES/sun3d_study_100" ] && DATA_ARGS+=(--sun3d "$FIXTURES/sun3d_study_100")
DEADLINE=$((START_EPOCH + TRAIN_END_S))
nvidia-smi dmon -s u -d 5 >"$REPORTS/gpu_utilisation_dmon.log" 2>&1 &
DMON_PID=$!
BACKGROUND+=("$DMON_PID")
TRAIN=("$PY" -m benchmarks.train_default_prior train --deadline "$DEADLINE" "${DATA_ARGS[@]}"
  --out "$WORK/default_prior" --report "$REPORTS/prior_train_gpu.md" "${TRAIN_ARGS[@]}")
step prior_train $((TRAIN_END_S + 25 - (SECONDS - T0))) 0 "${TRAIN[@]}"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $((DEADLINE - $(date +%s))) -gt 60 ]; then
  step prior_train_retry $((TRAIN_END_S + 25 - (SECONDS - T0))) 0 "${TRAIN[@]}" --no-channels-last
fi
kill "$DMON_PID" 2>/dev/null
pack_prior

# 4. Calibrate its intervals on frames no benchmark scores, then refine with it.
if [ -f "$WORK/default_prior/model_index.json" ]; then
  step prior_calibrate "$CAL_CAP" 100 "$PY" -m benchmarks.calibrate_prior --prior "$WORK/default_prior" "${CAL_ARGS[@]}" \
    --fixtures "$FIXTURES" --report "$REPORTS/prior_calibration_gpu.md"
  pack_prior
  step prior_refine "$REFINE_CAP" 75 "$PY" benchmarks/bench_prior_refine.py --prior "$WORK/default_prior" \
    --synthetic corpus --fills nearest --fixtures "$FIXTURES" --out "$REPORTS/prior_refine_gpu.md" \
    "${REFINE_ARGS[@]}"
else
  note "step prior_refine skipped: no trained prior"
fi

# 5. End to end, fused then torch grid, with what is left.
step hashgrid_e2e "$E2E_CAP" 20 "$PY" -m benchmarks.bench_hashgrid_gpu all "${E2E_ARGS[@]}" \
  --workdir "$WORK/hashgrid" --out "$REPORTS/hashgrid_gpu.md"
[ $SMOKE -eq 1 ] && cp "$WORK/hashgrid/smoke.md" "$REPORTS/hashgrid_gpu.md" 2>/dev/null

# 6. The training step alone (same card): the batch-64 baseline of the loop's patches/s.
step prior_step_speed 25 0 "$PY" -m benchmarks.train_default_prior step-speed "${SMOKE_ARG[@]}" --steps 20 \
  --out "$REPORTS/prior_step_speed_gpu.md"
exit 0
