#!/usr/bin/env bash
# Everything only a GPU shows, in ONE device call. Needs wheelhouse/ (scripts/build_wheelhouse.sh) and
# gpu_data/ (scripts/prepare_gpu_data.sh), both git-ignored and carried:
#
#   run(command="bash benchmarks/gpu_session.sh", carry=["wheelhouse", "gpu_data"], timeout_s=600)
#   bash benchmarks/gpu_session.sh --smoke      # here, CPU: tiny sizes, same steps and paths (~5 min)
#
# Steps, each with its own time cap, each writing to $OUT as it goes, a failed step never stopping the next.
# Caps shrink so that every later step keeps its reserve inside BUDGET_S (585 s: the call's limit is 600 s);
# the prior's training time is what gives way (PRIOR_MINUTES at most):
#   0  install the carried wheels into /tmp/site (the image's CUDA torch untouched) and import-check: fails fast
#   1  render the training corpus (640x480, all cores) in the background, meanwhile
#   2  bench_hashgrid_gpu (issue 12): compiled Triton kernel vs torch grid, correctness then rays/s
#   3  train the shippable default prior for PRIOR_MINUTES on the corpus + SUN3D fragment 1 (fp16 weights)
#   4  bench_prior_refine with that prior: held-out corpus rooms + real frames, s per 640x480 frame
# $OUT gets back at most 8 files: session.log, the three reports, the refinement picture and the prior as
# prior.tar.part-* (15 MB pieces: `cat prior.tar.part-* | tar -x` gives default_prior/).
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
PRIOR_MINUTES=${PRIOR_MINUTES:-3.5}
BUDGET_S=${BUDGET_S:-585}
FIXTURES=gpu_data/fixtures
mkdir -p "$OUT" "$WORK"
rm -rf "$OUT"/prior.tar.part-* "$WORK/default_prior"  # never pack or score a stale prior
LOG=$OUT/session.log
: >"$LOG"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
T0=$SECONDS
SUMMARY=()

note() { echo "[gpu_session +$((SECONDS - T0))s] $*" | tee -a "$LOG"; }
left() { echo $((BUDGET_S - (SECONDS - T0))); }
# step NAME CAP_S RESERVE_S CMD...: run with a time cap (cut so RESERVE_S stay for later steps), log everything,
# record rc and seconds; never exits the script.
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
  timeout --kill-after=15 "$cap" "$@" >>"$LOG" 2>&1
  rc=$?
  [ $rc -eq 124 ] && note "step $name hit its ${cap}s cap"
  SUMMARY+=("$name: rc $rc, $((SECONDS - start)) s")
  note "step $name: rc $rc after $((SECONDS - start)) s"
  return $rc
}
finish() {
  note "summary (total $((SECONDS - T0)) s):"
  printf '  %s\n' "${SUMMARY[@]}" | tee -a "$LOG"
}
trap finish EXIT

[ -d "$FIXTURES" ] || note "no $FIXTURES (scripts/prepare_gpu_data.sh): SUN3D and real frames are skipped"
if [ $SMOKE -eq 1 ]; then
  BUDGET_S=3000
  CORPUS_ARGS=(--num-rooms 2 --views-per-room 2 --width 160 --height 120 --workers 2)
  HASHGRID_ARGS=(--smoke) HASHGRID_CAP=400
  TRAIN_ARGS=(--smoke --num-workers 2) PRIOR_MINUTES=0.5
  REFINE_ARGS=(--synthetic-frames 1 --sun3d-frames 1 --sampling.steps 2 --sampling.samples 2 --sampling.overlap 2
    --threads 2)
  REFINE_CAP=400
else
  CORPUS_ARGS=(--num-rooms 64 --views-per-room 6 --width 640 --height 480 --workers "$(nproc)")
  HASHGRID_ARGS=(--rays 8192 --iterations 150 --warmup 20) HASHGRID_CAP=200
  TRAIN_ARGS=(--num-workers $(($(nproc) - 4)))
  REFINE_ARGS=(--threads 4) REFINE_CAP=150
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
step imports 90 0 "$PY" -m benchmarks.gpu_session_check $([ $SMOKE -eq 1 ] && echo --smoke) \
  || { note "FATAL: imports failed (see above); nothing else can run"; exit 4; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$LOG" 2>&1 || true

# 1. Corpus (foreground: the hash-grid timings below must not share the CPU with it); the hash-grid bench's
#    scene (one process, same names and sizes as bench_hashgrid_gpu's defaults) renders beside it.
if [ $SMOKE -eq 1 ]; then SCENE=(demo_smoke 16 64 48); else SCENE=(demo_640x480 48 640 480); fi
"$PY" -c "import sys; from pathlib import Path; from data_converters.synthetic.demo_scene import make_demo_scene
make_demo_scene(Path(sys.argv[1]), num_frames=int(sys.argv[2]), width=int(sys.argv[3]), height=int(sys.argv[4]))" \
  "$WORK/hashgrid/${SCENE[0]}" "${SCENE[@]:1}" >>"$LOG" 2>&1 &
SCENE_PID=$!
step corpus 150 330 "$PY" -m benchmarks.train_default_prior render --out "$WORK/corpus_train" "${CORPUS_ARGS[@]}"

# 2. Hash grid (issue 12).
wait $SCENE_PID || note "demo scene render failed (rc $?): the bench renders it itself"
step hashgrid "$HASHGRID_CAP" 300 "$PY" -m benchmarks.bench_hashgrid_gpu all "${HASHGRID_ARGS[@]}" \
  --workdir "$WORK/hashgrid" --out "$OUT/hashgrid_gpu.md"
[ $SMOKE -eq 1 ] && cp "$WORK/hashgrid/smoke.md" "$OUT/hashgrid_gpu.md" 2>/dev/null

# 3. Default prior.
SUN3D_ARGS=()
[ -d "$FIXTURES/sun3d_study_100" ] && SUN3D_ARGS=(--sun3d "$FIXTURES/sun3d_study_100")
# Loop minutes: PRIOR_MINUTES, or less so that setup + saving (75 s) and the refinement (110 s) still fit.
MINUTES=$(awk -v want="$PRIOR_MINUTES" -v left="$(left)" 'BEGIN { m = (left - 185) / 60; print (m < want ? m : want) }')
note "prior training loop: $MINUTES min"
step prior_train "$(awk -v m="$MINUTES" 'BEGIN { print int(60 * m) + 75 }')" 110 \
  "$PY" -m benchmarks.train_default_prior train --minutes "$MINUTES" --corpus "$WORK/corpus_train" \
  "${SUN3D_ARGS[@]}" --out "$WORK/default_prior" --report "$OUT/prior_train_gpu.md" "${TRAIN_ARGS[@]}"
if [ -f "$WORK/default_prior/unet/diffusion_pytorch_model.safetensors" ]; then
  tar -C "$WORK" -cf - default_prior | split -b 15m - "$OUT/prior.tar.part-"
  note "prior packed: $(du -cb "$OUT"/prior.tar.part-* | tail -1 | cut -f1) bytes," \
    "$(ls "$OUT"/prior.tar.part-* | wc -l) parts"
fi

# 4. Refinement with that prior.
if [ -f "$WORK/default_prior/model_index.json" ]; then
  step prior_refine "$REFINE_CAP" 0 "$PY" benchmarks/bench_prior_refine.py --prior "$WORK/default_prior" \
    --synthetic corpus --fills nearest telea --fixtures "$FIXTURES" --out "$OUT/prior_refine_gpu.md" \
    "${REFINE_ARGS[@]}"
else
  note "step prior_refine skipped: no trained prior"
fi
ls -l "$OUT" | tee -a "$LOG"
