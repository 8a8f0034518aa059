"""Peak resident memory of the current process, as the kernel counts it (Linux /proc).

One place for the measurement that `lion-export bench`'s worker and the benchmark scripts all make: reset the
peak counter (VmHWM) after set-up, run, read the peak back. Where /proc/self/clear_refs is not writable the reset
fails and callers fall back to the lifetime peak (ru_maxrss) and say so.
"""
from __future__ import annotations


def status_kib(field: str) -> int:
    """A KiB field of /proc/self/status, e.g. "VmRSS" (now) or "VmHWM" (peak since the last reset)."""
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":"))


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM); False where /proc/self/clear_refs is not writable."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


__all__ = ["status_kib", "reset_peak_rss"]
