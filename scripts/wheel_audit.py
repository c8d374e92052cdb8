"""Which distributions the device must be given: those whose modules a smoke run imported, less the image's.

Reads the per-process module lists that scripts/import_audit/sitecustomize.py wrote, maps each top-level
module to the distribution that provides it in this environment, drops the standard library, this project
and every distribution the device image already has, and prints `name==version` (this environment's
versions: the ones the smoke run proved).

    python scripts/wheel_audit.py AUDIT_DIR scripts/device_image_packages.txt > scripts/device_wheels.txt
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

OVERRIDES = {"fpsample": "0.3.3"}
"""Versions with no CPython 3.12 wheel, replaced by one that has it: fpsample 1.0.2 is a source-only (Rust)
release; nerfstudio imports it for splatfacto's datamanager only, which the session never runs."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(audit_dir: Path, image_list: Path) -> None:
    modules = set()
    for path in audit_dir.glob("*.txt"):
        modules |= set(path.read_text().split())
    modules -= set(sys.stdlib_module_names) | {"__main__", "sitecustomize"}
    image = {canonical(line) for line in image_list.read_text().splitlines() if line and not line.startswith("#")}
    providers = metadata.packages_distributions()
    needed, unknown = {}, []
    for module in sorted(modules):
        dists = providers.get(module)
        if not dists:
            unknown.append(module)  # this project's own packages, namespace leftovers, extension internals
            continue
        for dist in dists:
            if canonical(dist) not in image and canonical(dist) != "diffnerf-ns":
                needed[canonical(dist)] = OVERRIDES.get(canonical(dist), metadata.version(dist))
    print(
        f"# {len(needed)} distributions imported by `gpu_session.sh --smoke` that the device image lacks "
        f"(scripts/build_wheelhouse.sh --audit); modules without a distribution: {' '.join(unknown)}"
    )
    for name, version in sorted(needed.items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
