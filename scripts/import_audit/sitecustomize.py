"""Record the top-level modules each Python process imported, for scripts/build_wheelhouse.sh --audit.

Active only when IMPORT_AUDIT_DIR is set and this folder is on PYTHONPATH; subprocesses inherit both.
"""

import atexit
import os
import sys

_AUDIT_DIR = os.environ.get("IMPORT_AUDIT_DIR")


def _record() -> None:
    names = sorted({name.partition(".")[0] for name in list(sys.modules)})
    with open(os.path.join(_AUDIT_DIR, f"{os.getpid()}.txt"), "w") as f:
        f.write("\n".join(names) + "\n")


if _AUDIT_DIR:
    atexit.register(_record)
