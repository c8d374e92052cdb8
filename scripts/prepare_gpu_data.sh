#!/usr/bin/env bash
# Fill gpu_data/ (git-ignored) with the real frames benchmarks/gpu_session.sh uses; the device gets no ../shared.
#   SUN3D fragment 1 (training, self-supervised; every STRIDE-th frame), the three fragment-2 frames the
#   refinement benchmark scores (3160, 3184, 3209), the NYU labeled + raw frames it scores and takes hole
#   shapes from, and the TUM and SUN RGB-D validation frames the interval calibration is checked on. Prints the size: it travels in the device call's 64 MiB with the wheelhouse and the repo.
#
#   bash scripts/prepare_gpu_data.sh [FIXTURES_DIR (default ../shared/fixtures)] [STRIDE (default 3)]
# STRIDE 3 (17 of fragment 1's 50 frames, 30 fps neighbours being near-duplicates) is the default;
# build_wheelhouse.sh rebuilds gpu_data with a larger STRIDE when the call would not fit in 64 MiB (the repository
# holds the 20 MB prior that training continues from, and grows with every committed result).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-../shared/fixtures}
STRIDE=${2:-3}
[ -d "$SRC/sun3d_study_100" ] || { echo "prepare_gpu_data.sh: no $SRC/sun3d_study_100" >&2; exit 1; }
DST=gpu_data/fixtures
rm -rf gpu_data
mkdir -p "$DST/sun3d_study_100/fragment-1-rgbd-frames" "$DST/sun3d_study_100/fragment-2-rgbd-frames"
cp -r "$SRC/nyu_labeled_frame" "$SRC/nyu_raw_frame" "$SRC/other_sensors" "$DST/"
cp "$SRC/sun3d_study_100/camera-intrinsics.txt" "$DST/sun3d_study_100/"
i=0
for colour in "$SRC"/sun3d_study_100/fragment-1-rgbd-frames/frame-*.color.png; do
  if [ $((i % STRIDE)) -eq 0 ]; then
    stem=${colour%.color.png}
    cp "$stem".color.png "$stem".depth.png "$stem".pose.txt "$DST/sun3d_study_100/fragment-1-rgbd-frames/"
  fi
  i=$((i + 1))
done
for n in 003160 003184 003209; do
  cp "$SRC"/sun3d_study_100/fragment-2-rgbd-frames/frame-$n.* "$DST/sun3d_study_100/fragment-2-rgbd-frames/"
done
chmod -R u+w gpu_data
echo "gpu_data: $(du -sb gpu_data | cut -f1) bytes ($(du -sh gpu_data | cut -f1)), $(find gpu_data -type f | wc -l) files"
