"""`lion-export bench`: latency and peak memory of a model's forms per backend over sequence lengths, each point in
a fresh process, with the machine recorded (run: orchestration; worker: one point; baseline: the softmax twin;
machine: what ran it; plot: bench.png). Imports nothing heavy until run_bench is called."""
from __future__ import annotations

from .run import RUNTIMES, BenchError, BenchRequest, run_bench, series_lines

__all__ = ["RUNTIMES", "BenchError", "BenchRequest", "run_bench", "series_lines"]
