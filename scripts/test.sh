#!/usr/bin/env bash
# Set up (if needed) and run the test suite on CPU, offline. Default: every test not marked slow (the CI run);
# `bash scripts/test.sh -m slow` runs the multi-minute ones, `bash scripts/test.sh -m ""` everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -q -p no:warnings -m "not slow" "$@"
