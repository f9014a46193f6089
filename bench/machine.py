"""What every benchmark page says about the machine it ran on.

Where it sits: ``bench/`` — shared by the benchmark packages (store, api, scheduler,
pods, verify, proxy), each of which adds its own lines (library versions, the load
average at the moment it cares about) to this common description.
"""

from __future__ import annotations

import os
import platform


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
    }
