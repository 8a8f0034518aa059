"""The one plot the benchmark scripts draw: latency and peak memory against sequence length, log-log."""
from __future__ import annotations

from pathlib import Path


def plot_latency_and_memory(rows: list[dict], series_key: str, series: tuple[str, ...], memory_label: str,
                            title: str, path: Path) -> None:
    """One line per series (rows carry series_key, "L", "seconds", "peak_mib"); saved as a PNG at `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in series:
        pts = [r for r in rows if r[series_key] == name]
        if pts:
            ax_t.plot([r["L"] for r in pts], [r["seconds"] * 1e3 for r in pts], marker="o", label=name)
            ax_m.plot([r["L"] for r in pts], [r["peak_mib"] for r in pts], marker="o", label=name)
    for ax, label in ((ax_t, "latency (ms)"), (ax_m, memory_label)):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length L (tokens)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
