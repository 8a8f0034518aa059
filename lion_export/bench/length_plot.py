"""bench.png: latency and peak memory against sequence length, log-log, one line per (mode, backend) series."""
from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_output


def plot_bench(points: list[dict], title: str, path: Path) -> Path:
    """Median latency with a min..max bar, and peak memory, of every measured point; written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for series in dict.fromkeys(p["series"] for p in points):
        ok = sorted((p for p in points if p["series"] == series and p["status"] == "ok"), key=lambda p: p["seq_len"])
        if not ok:
            continue
        lengths = [p["seq_len"] for p in ok]
        median = [p["median_ms"] for p in ok]
        spread = [[m - p["min_ms"] for m, p in zip(median, ok)], [p["max_ms"] - m for m, p in zip(median, ok)]]
        style = {"linestyle": "--"} if series.startswith("softmax") else {}
        ax_t.errorbar(lengths, median, yerr=spread, marker="o", capsize=3, label=series, **style)
        ax_m.plot(lengths, [max(p["peak_mib"], 1e-3) for p in ok], marker="o", label=series, **style)
    for ax, label in ((ax_t, "latency (ms, median; bars: min..max)"), (ax_m, "peak memory of a run (MiB)")):
        ax.set_yscale("log")
        ax.set_xlabel("sequence length L (tokens)")
        ax.set_ylabel(label)
    return save_length_figure(fig, title, path)


def save_length_figure(fig, title: str, path: Path) -> Path:
    """The common ending of every plot against sequence length (bench.png, the long-sequence example): each axis
    log2 in L with a grid and a legend where it has data, the title, and the PNG written atomically."""
    import matplotlib.pyplot as plt

    for ax in fig.axes:
        ax.set_xscale("log", base=2)
        ax.grid(True, which="both", alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize="small")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


__all__ = ["plot_bench", "save_length_figure"]
