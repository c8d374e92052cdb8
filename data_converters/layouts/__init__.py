"""One reader per RGB-D capture layout; each parses its files into a `data_converters.capture.Capture`."""

from typing import Literal

Layout = Literal[
    "auto", "scene", "nyu-raw", "nyu-labeled", "tum", "redwood", "threedmatch", "record3d", "scannet", "plain"
]
"""Names of the accepted `--data` layouts ('scene' = already converted, 'auto' = detect)."""
