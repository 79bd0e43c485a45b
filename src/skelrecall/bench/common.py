"""What every benchmark shares: the machine description, timing of calls, and writing the outputs."""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# --- the machine ----------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """Logical cores this process may run on (its CPU affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def memory_gib() -> float | None:
    """Total RAM in GiB (from /proc/meminfo), ``None`` where unknown."""
    try:
        return int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        return None


def gpu_name() -> str:
    """Name of the first CUDA device torch sees, or ``"none"``."""
    try:
        import torch
    except ImportError:
        return "none"
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"


def package_version(dist: str) -> str:
    """Installed version of distribution ``dist``, or ``"not installed"``."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def machine_description(packages: Iterable[str] = ()) -> dict[str, str]:
    """The machine a benchmark ran on, as ``{name: text}`` (one Markdown bullet each, see
    :func:`machine_lines`): CPU model, logical and usable cores, RAM, GPU, Python, platform and the
    versions of ``packages`` (distribution names, e.g. ``("numpy", "torch")``)."""
    ram = memory_gib()
    info = {
        "CPU": f"{cpu_model()}, {os.cpu_count()} logical cores ({usable_cores()} usable by this process)"
        + (f", {ram:.0f} GiB RAM" if ram is not None else ""),
        "GPU": gpu_name(),
        "Python": platform.python_version(),
        "platform": platform.platform(),
    }
    packages = list(packages)
    if packages:
        info["versions"] = ", ".join(f"{d} {package_version(d)}" for d in packages)
    return info


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (NaN where the OS has none)."""
    return os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3


def format_load(load: Iterable[float]) -> str:
    """``"0.89, 1.60, 1.81"``; ``"n/a"`` for unknown values."""
    values = list(load)
    return "n/a" if any(math.isnan(x) for x in values) else ", ".join(f"{x:.2f}" for x in values)


def machine_lines(info: Mapping[str, Any]) -> list[str]:
    """``info`` as Markdown bullets, ``- name: text``."""
    return [f"- {k}: {v}" for k, v in info.items()]


# --- timing ---------------------------------------------------------------------------------------


@dataclass
class Timings:
    """Per-call wall-clock and process CPU (user + system) seconds of repeated calls, and the
    last call's return value."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    result: Any = None

    @property
    def calls(self) -> int:
        return len(self.wall)

    @property
    def wall_median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    @property
    def wall_total(self) -> float:
        return math.fsum(self.wall)

    @property
    def cpu_total(self) -> float:
        return math.fsum(self.cpu)


def time_calls(
    fn: Callable[[], Any], calls: int = 1, *, min_seconds: float = 0.0, max_calls: int | None = None
) -> Timings:
    """Call ``fn`` at least ``calls`` times and until the calls took ``min_seconds`` of wall time
    together, at most ``max_calls`` times; time each call (``time.perf_counter`` and
    ``time.process_time``)."""
    out = Timings()
    while (max_calls is None or out.calls < max_calls) and (out.calls < calls or out.wall_total < min_seconds):
        t0, c0 = time.perf_counter(), time.process_time()
        out.result = fn()
        out.wall.append(time.perf_counter() - t0)
        out.cpu.append(time.process_time() - c0)
    return out


# --- outputs --------------------------------------------------------------------------------------


def write_outputs(out_dir: str | Path, writers: Mapping[str, Callable[[Path], Any]]) -> list[Path]:
    """Write each ``out_dir/<name>`` with ``writers[name](temporary path)``, atomically
    (:func:`skelrecall.io.atomic_write`); returns the paths in order."""
    from skelrecall.io import atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [atomic_write(out / name, writer) for name, writer in writers.items()]
