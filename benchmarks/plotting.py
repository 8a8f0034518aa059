"""The plots the benchmark scripts draw: latency and peak memory against sequence length (log-log), grouped bars
for a few cases side by side, and a served load test's throughput and latency against concurrent clients."""
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
    _log_log_axes(((ax_t, "latency (ms)"), (ax_m, memory_label)), "sequence length L (tokens)", "small")
    _save(fig, title, path)


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


def plot_load(points: list[dict], baselines: dict[str, dict], title: str, path: Path) -> None:
    """A served load test: requests/s and p50 / p99 latency against concurrent clients, one line per (model,
    batching), each model's in-process figure dashed (points carry model, batching, clients, req_per_s, p50_ms,
    p99_ms; baselines map a model to its in-process req_per_s and p50_ms)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_l) = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, model in enumerate(baselines):
        colour = f"C{index}"
        for batching, style in (("off", ":"), ("on", "-")):
            pts = [p for p in points if p["model"] == model and p["batching"] == batching]
            if not pts:
                continue
            clients = [p["clients"] for p in pts]
            label = f"{model}, batching {batching}"
            ax_r.plot(clients, [p["req_per_s"] for p in pts], style, marker="o", color=colour, label=label)
            ax_l.plot(clients, [p["p50_ms"] for p in pts], style, marker="o", color=colour, label=f"{label} p50")
            ax_l.plot(clients, [p["p99_ms"] for p in pts], style, marker="^", color=colour, alpha=0.5,
                      label=f"{label} p99")
        ax_r.axhline(baselines[model]["req_per_s"], color=colour, linestyle="--", linewidth=1,
                     label=f"{model} in process, 1 at a time")
        ax_l.axhline(baselines[model]["p50_ms"], color=colour, linestyle="--", linewidth=1,
                     label=f"{model} in process p50")
    _log_log_axes(((ax_r, "requests / s"), (ax_l, "latency (ms)")), "concurrent clients", "x-small")
    counts = sorted({p["clients"] for p in points})
    for ax in (ax_r, ax_l):
        ax.set_xticks(counts, [str(c) for c in counts])
    _save(fig, title, path)


def _log_log_axes(axes: tuple, xlabel: str, legend_size: str) -> None:
    """Log-2 x, log y, labels, grid and legend on each (axis, y label)."""
    for ax, label in axes:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=legend_size)


def _save(fig, title: str, path: Path) -> None:
    """Title, tight layout, a PNG at `path`, and the figure closed."""
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
