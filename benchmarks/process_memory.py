"""This process's memory from /proc/self (Linux): now, the peak, and starting the peak over.

The EASE benchmarks measure a fit's or a save's own peak in a fresh process: reset the peak
after the data is prepared, then read it when the step is done."""

from __future__ import annotations

from pathlib import Path


def status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: now; VmHWM: the peak), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Start the peak (VmHWM) over from the current RSS (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")
