#!/usr/bin/env bash
# Fill wheelhouse/ (git-ignored) with every wheel benchmarks/gpu_session.sh needs that the device image lacks.
#
#   bash scripts/build_wheelhouse.sh           # scripts/device_wheels.txt + this project's own wheel (~1 min)
#   bash scripts/build_wheelhouse.sh --audit   # first regenerate device_wheels.txt from the imports of a
#                                               # `gpu_session.sh --smoke --no-install` run (~5 min on 2 cores)
#
# pip here resolves from /opt/wheels, the local indexes /opt/pypi and /opt/pypi-more, then PyPI (pip config
# list). Wheels are fetched for the device's interpreter (CPython 3.12, manylinux x86_64) without their
# dependencies: device_wheels.txt is the complete list, the image (scripts/device_image_packages.txt: torch,
# torchvision, triton, numpy, accelerate, transformers, opencv, scipy, h5py, ... ) supplies the rest.
# The project's wheel carries nothing but its metadata that matters: on the device PYTHONPATH puts the
# working tree first, and the wheel's entry points register the nerfstudio methods.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=/work/main/.venv/bin/python

if [ "${1:-}" = "--audit" ]; then
  audit=$(mktemp -d)
  IMPORT_AUDIT_DIR=$audit PYTHONPATH=$PWD/scripts/import_audit PYTHON=$PY OUT=outputs/gpu_session_audit \
    bash benchmarks/gpu_session.sh --smoke --no-install
  "$PY" scripts/wheel_audit.py "$audit" scripts/device_image_packages.txt >scripts/device_wheels.txt
  rm -rf "$audit"
  echo "wrote scripts/device_wheels.txt:"; cat scripts/device_wheels.txt
fi

rm -rf wheelhouse
mkdir -p wheelhouse
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d wheelhouse -r scripts/device_wheels.txt
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w wheelhouse .
# The project wheel carries metadata only (entry points); its copy of a shipped prior would travel a second
# time beside the working tree's, so it is taken out (and out of RECORD).
"$PY" - wheelhouse/diffnerf_ns-*.whl <<'PYEOF'
import sys, zipfile
from pathlib import Path
wheel = Path(sys.argv[1])
slim = wheel.with_suffix(".slim")
with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        if item.filename.startswith("diffnerf_ns/prior/pretrained/"):
            continue
        data = src.read(item)
        if item.filename.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines(keepends=True)
            data = "".join(l for l in lines if not l.startswith("diffnerf_ns/prior/pretrained/")).encode()
        dst.writestr(item, data)
slim.replace(wheel)
PYEOF

# What travels: the working tree (tracked files), the wheels and gpu_data, within the device call's 64 MiB less
# MARGIN_KIB for results written before the call. Where they do not fit (the repository grows with every committed
# result), gpu_data is rebuilt with every STRIDE-th fragment-1 frame for STRIDE = 4, 5, ... until they do.
MARGIN_KIB=${MARGIN_KIB:-1536}
sizes() {
  repo=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
  wheels=$(du -cb wheelhouse/*.whl | tail -1 | cut -f1)
  data=$( [ -d gpu_data ] && du -sb gpu_data | cut -f1 || echo 0)
  total=$((repo + wheels + data))
}
sizes
stride=3
while [ "$total" -ge $(((64 * 1024 - MARGIN_KIB) * 1024)) ] && [ -d gpu_data ] && [ "$stride" -lt 10 ]; do
  stride=$((stride + 1))
  echo "$((total / 1024)) KiB would travel: gpu_data rebuilt with STRIDE $stride"
  bash scripts/prepare_gpu_data.sh ../shared/fixtures "$stride"
  sizes
done
echo "wheelhouse: $(ls wheelhouse/*.whl | wc -l) wheels, $((wheels / 1024)) KiB; repo $((repo / 1024)) KiB;" \
  "gpu_data $((data / 1024)) KiB; travelling in all $((total / 1024)) KiB of $((64 * 1024)) KiB" \
  "(margin asked: $MARGIN_KIB KiB)"
ls -S wheelhouse | head -5
[ "$total" -lt $(((64 * 1024 - MARGIN_KIB) * 1024)) ] || {
  echo "over the 64 MiB carry limit less the margin, even with gpu_data at STRIDE $stride" >&2
  exit 1
}
