"""What machine a benchmark ran on: CPU model, cores, Python and library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else :func:`platform.processor`)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(
    packages: tuple[str, ...] = ("numpy", "scipy", "numba", "highspy", "ortools", "pyomo"),
) -> dict[str, str]:
    """CPU model, core count, OS, Python and the versions of ``packages``."""
    info = {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    for pkg in packages:
        try:
            info[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            info[pkg] = "not installed"
    return info


def machine_line(packages: tuple[str, ...] | None = None) -> str:
    """:func:`machine_info` as one line."""
    info = machine_info() if packages is None else machine_info(packages)
    return ", ".join(f"{k} {v}" for k, v in info.items())
