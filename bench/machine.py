"""What every benchmark page says about the machine it ran on.

Where it sits: ``bench/`` — shared by the benchmark packages (store, api, scheduler,
pods, verify, proxy), each of which adds its own lines (library versions, the load
average at the moment it cares about) to this common description.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def cpu_model() -> str:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def describe_machine() -> dict[str, str]:
    """CPU (model and cores), memory, kernel and Python: the lines every page shows."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": f"{cpu_model()}, {os.cpu_count()} cores",
        "memory": f"{memory:.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "CPU speed now (a fixed pure-Python loop, best of 3; lower is faster)":
            f"{cpu_reference_ms():.0f} ms",
    }


def cpu_reference_ms() -> float:
    """Milliseconds for one fixed pure-Python loop, best of three: how fast this shared
    machine's CPU is at the moment of the run. It has been seen to vary by 1.5-2x within
    an hour, so absolute figures on two pages compare only through it."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return best * 1e3


def fsync_micros(directory: Path, n: int = 100) -> float:
    """What one fsync costs right now on the benchmark's filesystem (context for every
    figure that commits to disk)."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        started = time.perf_counter()
        for _ in range(n):
            os.write(fd, b"x" * 128)
            os.fsync(fd)
        return (time.perf_counter() - started) / n * 1e6
    finally:
        os.close(fd)
        path.unlink()
