"""The run folder: its path, identity, status, lock, markers, checkpoints and results (one owner).

Layout (``runs/<profile>/<experiment>/<dataset>/<backbone>/<loss>/w=<w>/seed=<s>/fold=<f>/``)::

    config.yaml          the resolved config (written first; its identity hash names what the run is)
    environment.json     git commit and dirty flag, package versions, machine; ``attempts``: one per start
    preprocessing.json   normalization scheme and statistics, channels, file ending (skelrecall-predict)
    .lock                held (``flock``) by the process working on the run; holds its pid, host and start
    checkpoints/         last.ckpt and epoch=<e>-step=<s>.ckpt, each with a ``.sha256`` beside it
    csv/attempt_<k>/     metrics.csv of each start        wandb/, wandb_id.txt   the W&B run
    predictions/         whole-image label maps (written to predictions.partial/, moved when complete)
    per_case.csv, summary.json   the evaluation (skelrecall.evaluate)
    validation/          with an ``objective`` (sweepers): the validation fold's predictions and scores
    done                 written last: JSON with the config hash, train time, headline metrics
    failed               JSON: error, traceback and the command-line overrides of a run that crashed
    interrupted          JSON: a run stopped by Ctrl-C (rerun the same command to resume)

**Identity.** ``config_hash`` is the SHA-256 of the resolved config without the keys that cannot
change results (``IGNORED_KEYS``: paths, logger, threads, loader/evaluation workers, progress
display). A rerun whose config hashes differently from the folder's refuses (exit code 2) and names
the differing keys; ``force=true`` clears the folder and trains from scratch.

**Status.** ``running`` (the lock is held), ``done``, ``failed``, ``interrupted`` (Ctrl-C, a kill, a
crash of the machine: progress or config but no end marker) or ``new``.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from skelrecall.environment import environment_info
from skelrecall.io import atomic_write, write_json

#: config keys (dotted) that cannot change a run's results; left out of its identity hash
IGNORED_KEYS = (
    "paths",
    "run_dir",
    "force",
    "logger",
    "torch_threads",
    "data.num_workers",
    "data.cache",
    "evaluation.num_workers",
    "trainer.enable_progress_bar",
    "trainer.log_every_n_steps",
    "trainer.enable_model_summary",
    "dataset.create",
    "dataset.stand_in",
)
#: everything a run writes (``force=true`` removes all of it; Hydra's ``.hydra/`` and log stay)
OUTPUTS = (
    "config.yaml",
    "environment.json",
    "preprocessing.json",
    "checkpoints",
    "csv",
    "wandb",
    "wandb_id.txt",
    "predictions",
    "predictions.partial",
    "per_case.csv",
    "summary.json",
    "validation",
    "done",
    "failed",
    "interrupted",
)
CHECKSUM = ".sha256"
_EPOCH_CKPT = re.compile(r"^epoch=(\d+)-step=(\d+)\.ckpt$")


class RunConflictError(RuntimeError):
    """The run folder holds a run of another configuration, or another process is working on it."""


class CheckpointError(RuntimeError):
    """No intact checkpoint to resume from."""


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def identity_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without ``IGNORED_KEYS`` (a deep copy)."""
    out = json.loads(json.dumps(config, default=str))
    for dotted in IGNORED_KEYS:
        *parents, last = dotted.split(".")
        node = out
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 (hex, 16 characters) of the canonical JSON of ``identity_config(config)``."""
    text = json.dumps(identity_config(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every identity key that differs (missing: ``<absent>``)."""
    a, b = _flatten(identity_config(old)), _flatten(identity_config(new))
    absent = "<absent>"
    return [
        (k, a.get(k, absent), b.get(k, absent)) for k in sorted(set(a) | set(b)) if a.get(k, absent) != b.get(k, absent)
    ]


def dataset_fingerprint(dataset_json: str | Path) -> str | None:
    """SHA-256 (16 hex characters) of a converted dataset's ``dataset.json``, which records the converter's
    or generator's parameters and the cases: it changes when the data are made differently. None if absent."""
    path = Path(dataset_json)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def write_checksum(path: Path) -> None:
    """Write ``<path>.sha256`` (the file's SHA-256), atomically."""
    atomic_write(path.with_name(path.name + CHECKSUM), lambda tmp: tmp.write_text(file_digest(path) + "\n"))


def checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` cannot be resumed from (empty, no checksum, checksum mismatch), or None if intact."""
    if path.stat().st_size == 0:
        return "empty file"
    sidecar = path.with_name(path.name + CHECKSUM)
    if not sidecar.is_file():
        return f"no checksum file {sidecar.name} (written after every complete save)"
    if sidecar.read_text().strip() != file_digest(path):
        return "checksum mismatch (truncated or altered after it was written)"
    return None


def rank_zero() -> bool:
    """Whether this process is the (only or) first process of a distributed run."""
    from lightning.fabric.utilities.rank_zero import _get_rank

    return (_get_rank() or 0) == 0


@dataclass(frozen=True)
class RunDir:
    """One run folder (see the module docstring)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # --- reading --------------------------------------------------------------------------------
    @classmethod
    def find(cls, root: str | Path) -> Iterator[RunDir]:
        """Every run folder below ``root`` (a folder with ``config.yaml`` and ``environment.json``)."""
        for config in sorted(Path(root).rglob("config.yaml")):
            if (config.parent / "environment.json").exists():  # not Hydra's .hydra/ or W&B's files/
                yield cls(config.parent)

    def config(self) -> dict[str, Any] | None:
        path = self / "config.yaml"
        return yaml.safe_load(path.read_text()) if path.exists() else None

    def _json(self, name: str) -> Any:
        path = self / name
        try:
            return json.loads(path.read_text()) if path.exists() else None
        except json.JSONDecodeError:
            return {"unreadable": path.read_text()[-2000:]}

    def done_info(self) -> dict[str, Any] | None:
        return self._json("done")

    def failure(self) -> dict[str, Any] | None:
        return self._json("failed")

    def summary(self) -> dict[str, Any] | None:
        return self._json("summary.json")

    def environment(self) -> dict[str, Any] | None:
        return self._json("environment.json")

    def stored_hash(self) -> str | None:
        """The identity hash of the run in this folder (from ``done``, else from ``config.yaml``)."""
        done = self.done_info() or {}
        if done.get("config_hash"):
            return done["config_hash"]
        config = self.config()
        return config_hash(config) if config is not None else None

    def is_locked(self) -> bool:
        """Whether a live process holds the lock (a lock left by a dead process does not count)."""
        path = self / ".lock"
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def status(self) -> str:
        """``running``, ``done``, ``failed``, ``interrupted`` or ``new`` (see the module docstring)."""
        if self.is_locked():
            return "running"
        if self.is_done():
            return "done"
        if (self / "failed").exists():
            return "failed"
        if (self / "interrupted").exists() or (self / "checkpoints").is_dir() or (self / "config.yaml").exists():
            return "interrupted"
        return "new"

    def is_done(self) -> bool:
        """The run finished: ``done`` (written last) and its ``summary.json`` exist."""
        return (self / "done").exists() and (self / "summary.json").exists()

    def did_not_train(self) -> bool:
        """A finished run whose predictions are all empty (counted when they were written)."""
        done = self.done_info() or {}
        return bool(done.get("n_cases")) and done.get("empty_predictions") == done["n_cases"]

    def has_progress(self) -> bool:
        """A finished run or saved training progress (what a config change must not silently reuse)."""
        return (self / "done").exists() or any((self / "checkpoints").glob("*.ckpt"))

    def stored_data_fingerprint(self) -> str | None:
        """The ``dataset_fingerprint`` the run trained on (from ``done``, else from its last start)."""
        return (self.done_info() or {}).get("data_fingerprint") or (self.environment() or {}).get("data_fingerprint")

    def git_commits(self) -> list[str]:
        """Short commit (``+dirty`` when the tree had changes) of every start of this run."""
        env = self.environment() or {}
        out = []
        for attempt in env.get("attempts") or [env]:
            commit = (attempt.get("git_commit") or "unknown")[:10]
            out.append(commit + ("+dirty" if attempt.get("git_dirty") else ""))
        return list(dict.fromkeys(out))

    # --- identity ---------------------------------------------------------------------------------
    def check_identity(self, config: dict[str, Any]) -> None:
        """Refuse (``RunConflictError``) if this folder holds progress of a differently configured run."""
        stored = self.config()
        if stored is None or not self.has_progress():
            return
        if config_hash(stored) == config_hash(config):
            return
        diff = config_diff(stored, config)
        lines = [f"  {k}: {old!r} (in the folder) -> {new!r} (now)" for k, old, new in diff[:20]]
        more = f"\n  ... and {len(diff) - 20} more" if len(diff) > 20 else ""
        what = "a finished run" if (self / "done").exists() else "an unfinished run"
        raise RunConflictError(
            f"{self.path} holds {what} of another configuration; its results would not match this command.\n"
            + "\n".join(lines)
            + more
            + "\nNothing was changed. Pass force=true to delete that run and train this configuration from scratch "
            "(or choose another experiment_name/paths.runs)."
        )

    def check_data(self, fingerprint: str | None) -> None:
        """Refuse (``RunConflictError``) if this folder's progress was made on differently made data."""
        stored = self.stored_data_fingerprint()
        if stored is None or fingerprint is None or stored == fingerprint or not self.has_progress():
            return
        raise RunConflictError(
            f"{self.path} holds a run trained on other data: the dataset's dataset.json changed since "
            f"(fingerprint {stored} in the folder, {fingerprint} now; it was converted or synthesized again with "
            "other settings). Nothing was changed. Pass force=true to delete that run and train again."
        )

    def record_data_fingerprint(self, fingerprint: str | None) -> None:
        env = self.environment() or {}
        write_json(self / "environment.json", {**env, "data_fingerprint": fingerprint})

    # --- writing (rank zero only) -------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive ``flock`` on ``.lock`` (released by the kernel if the process dies).

        A second process on a live run raises ``RunConflictError`` naming the holder; a lock file left
        by a dead process is taken over with a message.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        path = self / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "another process"
            os.close(fd)
            raise RunConflictError(
                f"{self.path} is in use by {holder}; wait for it to finish, or stop it "
                "(its run resumes when you rerun the command)"
            ) from None
        previous = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        if previous:
            print(f"[skelrecall] {self.path}: taking over the lock of {previous}, which is no longer running")
        me = f"pid {os.getpid()} on {socket.gethostname()} (started {_now()})"
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            os.close(fd)  # closing releases the flock

    def clear(self) -> None:
        """Remove every output of the run (``force=true``)."""
        for name in OUTPUTS:
            target = self / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)

    def begin(self, config: dict[str, Any]) -> None:
        """Write ``config.yaml`` and record this start in ``environment.json``; clear old end markers."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self / "config.yaml", lambda tmp: tmp.write_text(yaml.safe_dump(config, sort_keys=False)))
        info = environment_info()
        env = self.environment() or {}
        attempts = env.get("attempts", [])
        attempts.append({"started": _now(), **{k: info[k] for k in ("git_commit", "git_dirty", "command")}})
        kept = {"data_fingerprint": env["data_fingerprint"]} if "data_fingerprint" in env else {}
        write_json(
            self / "environment.json", {**info, "config_hash": config_hash(config), "attempts": attempts, **kept}
        )
        for marker in ("failed", "interrupted"):
            (self / marker).unlink(missing_ok=True)

    def mark_done(self, config: dict[str, Any], **info: Any) -> None:
        write_json(self / "done", {"finished": _now(), "config_hash": config_hash(config), **info})

    def mark_failed(self, exc: BaseException, overrides: list[str] | None = None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(
            self / "failed",
            {
                "time": _now(),
                "error": f"{type(exc).__name__}: {exc}",
                "overrides": overrides or [],
                "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            },
        )

    def mark_interrupted(self) -> None:
        write_json(self / "interrupted", {"time": _now(), "hint": "rerun the same command to resume"})

    # --- checkpoints ---------------------------------------------------------------------------------
    def resume_checkpoint(self, report: bool = True) -> Path | None:
        """The newest intact checkpoint (``last.ckpt``, else the newest ``epoch=*.ckpt``), or None if the run
        has none. Damaged ones are reported by path (``report``: print it); if all are damaged,
        ``CheckpointError``."""
        folder = self / "checkpoints"
        epochs = sorted(
            (p for p in folder.glob("epoch=*.ckpt") if _EPOCH_CKPT.match(p.name)),
            key=lambda p: tuple(int(x) for x in _EPOCH_CKPT.match(p.name).groups()),
            reverse=True,
        )
        candidates = [p for p in [folder / "last.ckpt", *epochs] if p.is_file()]
        damaged = []
        for path in candidates:
            problem = checkpoint_problem(path)
            if problem is None:
                if damaged and report:
                    print(f"[skelrecall] resuming from {path} instead")
                return path
            damaged.append(f"{path}: {problem}")
            if report:
                print(f"[skelrecall] checkpoint {path} is damaged ({problem}); not resuming from it")
        if damaged:
            raise CheckpointError(
                "no intact checkpoint to resume from:\n  "
                + "\n  ".join(damaged)
                + "\nPass force=true to delete the run and train from scratch."
            )
        return None
