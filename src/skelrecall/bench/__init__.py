"""Resource benchmarks: every goal is a ratio against a baseline measured in the same run.

Shared helpers (machine description, timing, writing outputs) live in :mod:`skelrecall.bench.common`.
"""

from skelrecall.bench.common import cpu_model, machine_description, time_calls

__all__ = ["cpu_model", "machine_description", "time_calls"]
