"""Pure pieces of bench/image_transfer.py: the medians, the table and the verdict against the target.
The benchmark itself is not a test: `.venv/bin/python bench/image_transfer.py`."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "image_transfer_bench", Path(__file__).resolve().parents[2] / "bench" / "image_transfer.py")
bench = sys.modules.setdefault("image_transfer_bench", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(bench)

LAYERED = [bench.Transfer("layer-aware", b, s, "1 of 4 layers sent") for b, s in ((17_405, 3.3), (17_369, 3.5),
                                                                                   (17_400, 9.0))]
WHOLE = bench.Transfer("whole image", 102_385_668, 5.74)


def test_median_of_rounds():
    assert bench.median(LAYERED) == bench.Transfer("layer-aware", 17_400, 3.5, "1 of 4 layers sent")


def test_table():
    assert bench.table(bench.median(LAYERED), WHOLE, 321_526_272).splitlines() == [
        "release 2 (app code only)                      bytes sent       MB  wall s",
        "layer-aware                                         17400     0.02    3.50",
        "whole image                                     102385668   102.39    5.74",
        "(image as docker save writes it)                321526272   321.53"]


def test_verdict_names_the_target():
    assert bench.verdict(bench.median(LAYERED), WHOLE) == (
        "bytes: 5884x fewer with the layer-aware transfer (target >= 10x: met); wall time: 1.6x faster")
    assert bench.verdict(bench.Transfer("l", 20_000_000, 9.0), WHOLE) == (
        "bytes: 5x fewer with the layer-aware transfer (target >= 10x: NOT met); wall time: 0.6x slower")
