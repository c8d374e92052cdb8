#!/usr/bin/env bash
# Install everything diffnerf-ns needs into ./.venv (idempotent; about 5 minutes the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  # libusb: open3d (ns-export) links it; chromium: the viewer test's headless browser.
  if ! dpkg -s libusb-1.0-0 chromium >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 chromium >/dev/null
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
