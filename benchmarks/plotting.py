"""The plots the benchmark scripts draw: latency and peak memory against sequence length (log-log), and grouped
bars for a few cases side by side."""
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


def plot_grouped_bars(groups: dict[str, dict[str, float]], ylabel: str, title: str, path: Path) -> None:
    """One cluster of bars per group ({group: {series: value}}), each bar labelled with its value, and the ratio
    of the first series to each other one above the cluster; saved as a PNG at `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = list(next(iter(groups.values())))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 * len(groups)), 4.2))
    for index, name in enumerate(series):
        xs = [g + (index - (len(series) - 1) / 2) * width for g in range(len(groups))]
        values = [groups[group][name] for group in groups]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize="small")
    for g, values in enumerate(groups.values()):
        first = values[series[0]]
        ratios = ", ".join(f"{first / values[name]:.2f}x" for name in series[1:])
        ax.annotate(ratios, (g, max(values.values())), xytext=(0, 14), textcoords="offset points", ha="center")
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_ylabel(ylabel)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.15)
    ax.legend(fontsize="small")
    ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
