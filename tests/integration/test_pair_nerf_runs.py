"""The paired comparison of stored NeRF runs (`benchmarks/pair_nerf_runs.py`): direction, ratio and missing cells."""

from __future__ import annotations

from benchmarks.pair_nerf_runs import pair_runs, summary_row


def run(psnr: float, abs_rel: float) -> dict:
    return {"psnr": psnr, "depth_abs_rel": abs_rel, "seconds_per_iteration": 0.2}


def test_pairs_are_b_minus_a_and_b_over_a_and_skip_what_a_side_lacks() -> None:
    """Catches a flipped difference (A - B), an inverted ratio (A / B) and a cell paired with a missing or stale
    run (None) instead of being listed."""
    a = {("room1", "few3", 0): run(20.0, 0.10), ("room1", "few3", 1): run(25.0, 0.05), ("sun3d", "few3", 0): None}
    b = {("room1", "few3", 0): run(21.0, 0.08), ("room1", "few3", 1): run(24.5, 0.06), ("sun3d", "few3", 0): run(1, 1)}
    pairs, missing = pair_runs(a, b)
    assert [p.cell for p in pairs] == [("room1", "few3", 0), ("room1", "few3", 1)]
    assert [round(p.psnr_gain, 6) for p in pairs] == [1.0, -0.5]
    assert [round(p.abs_rel_ratio, 6) for p in pairs] == [0.8, 1.2]
    assert missing == ["sun3d/few3 seed 0: no current run on side A"]


def test_summary_row_counts_and_averages_the_pairs() -> None:
    """Catches the mean taken over one side's values instead of the per-pair differences, and "higher" / "lower"
    counted the wrong way round."""
    a = {("room1", "few3", s): run(20.0 + s, 0.10) for s in range(3)}
    b = {
        ("room1", "few3", s): run(20.0 + s + d, 0.10 * r) for s, d, r in ((0, 0.3, 0.9), (1, -0.6, 1.3), (2, 0.6, 0.8))
    }
    pairs, _ = pair_runs(a, b)
    assert summary_row("rooms few3", pairs) == "| rooms few3 | 3 | +0.10 (-0.60, +0.60) | 2/3 | 1.000 (0.900) | 2/3 |"
