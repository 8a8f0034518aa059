"""Calibration inputs: the real data whose activation ranges set the INT8 scales.

Two sources: an .npz in the format `verify --load-inputs` reads (one case, or several "case0/x", ... saved by
--save-inputs), or, in the Python API, a callable returning an iterable of feeds. Every feed is checked against
the graph's inputs before the calibrator runs. There is no fallback to generated inputs: scales fitted to noise
would quantize real data badly, so no data is an error.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..verify.case_inputs import InputSpec, check_feed, load_input_cases

Feed = dict[str, np.ndarray]


class CalibrationError(ValueError):
    """Calibration data that cannot calibrate this graph (missing, empty, not matching its inputs)."""


@dataclass(frozen=True)
class CalibrationFeeds:
    """Checked feeds for the calibrator, and where they came from (for messages)."""

    feeds: tuple[Feed, ...]
    source: str

    def describe(self) -> str:
        rows = sum(next(iter(feed.values())).shape[0] if feed else 0 for feed in self.feeds)
        return f"{len(self.feeds)} batch{'es' if len(self.feeds) != 1 else ''} ({rows} rows) from {self.source}"


def _checked(feeds: Iterable[Feed], specs: list[InputSpec], source: str) -> CalibrationFeeds:
    try:
        checked = tuple(check_feed(feed, specs, source) for feed in feeds)
    except ValueError as error:      # one error type for every bad calibration set, whatever its source
        raise CalibrationError(str(error)) from None
    if not checked or all(min((a.shape[0] if a.ndim else 1) for a in feed.values()) == 0 for feed in checked):
        raise CalibrationError(f"{source}: the calibration set is empty")
    return CalibrationFeeds(checked, source)


def feeds_from_npz(path: str | Path, specs: list[InputSpec]) -> CalibrationFeeds:
    """Every case of an inputs .npz, checked against the graph's `specs`."""
    try:
        cases = load_input_cases(path, specs)
    except ValueError as error:
        raise CalibrationError(str(error)) from None
    return _checked((feed for _, feed in cases), specs, Path(path).name)


def feeds_from_callable(make_feeds: Callable[[], Iterable[Feed]], specs: list[InputSpec]) -> CalibrationFeeds:
    """The feeds a user's callable returns (each a {input name: array} dict), checked against `specs`."""
    return _checked(make_feeds(), specs, getattr(make_feeds, "__name__", "the calibration callable"))


def data_reader(calibration: CalibrationFeeds, progress: Callable[[str], None] | None):
    """An onnxruntime CalibrationDataReader over the feeds, reporting each batch it hands out."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(enumerate(calibration.feeds, start=1))

        def get_next(self) -> Feed | None:
            index, feed = next(self._feeds, (0, None))
            if feed is not None and progress is not None:
                progress(f"calibrating: batch {index}/{len(calibration.feeds)}")
            return feed

    return _Reader()


__all__ = ["CalibrationError", "CalibrationFeeds", "data_reader", "feeds_from_callable", "feeds_from_npz"]
