"""Preprocessed case cache: each case of a dataset converted once to memory-mappable ``.npy`` files.

Like nnU-Net's preprocessed folder, but independent of fold, seed and normalization, so one cache
serves every run on a dataset. :class:`~skelrecall.data.datamodule.SegmentationDataModule` fills it
(``data.cache.enabled``) and its loader workers map the files per crop, so a training process reads
only the pages of its patches instead of holding every case in memory.

Format (``FORMAT_VERSION`` 1)::

    <cache>/                      default: <nnunet_raw>/../cache/<dataset folder>/ (data/cache/DatasetNNN_Name/)
      .gitignore                  "*": never committed
      .lock                       flock held while entries are built; a second builder waits, then reuses them
      manifest.json               format, dataset, dims, ignore label, dataset.json SHA-256 and one fingerprint
                                  digest per entry (a summary for people; entry.json decides)
      <split>/<case>/             one entry per case (split: Tr)
        image.npy                 float32 (C, *spatial): the channel files stacked, NOT normalized
        label.npy                 uint8, or int16 where values exceed 255: (1, *spatial), checked against dataset.json
        fg.npy                    uint32 (int64 above 2**32 voxels): ascending C-order flat indices of every
                                  foreground voxel (label > 0, ignore label excluded)
        entry.json                {"format", "case", "split", "fingerprint", "arrays": {name: {shape, dtype,
                                  bytes}}, "info": {"zscore": per-channel mean/std, "n_fg", "meta": JSON-safe geometry}}

Normalization is applied per crop, elementwise, with the case's z-score statistics or the fold's CT
statistics, which gives the same float32 values as normalizing the whole image first; CT statistics
(which depend on fold and seed) are drawn from ``fg.npy``/``image.npy`` at setup. So the entries
hold nothing that depends on normalization, fold or seed.

**Invalidation.** An entry is used only if its ``entry.json`` parses, its ``fingerprint`` equals the
current one (format version, SHA-256 of dataset.json, dims, ignore label, split, and relative name,
size, mtime_ns and inode of every source file: image channels and label) and every ``.npy`` has the
recorded byte size. Anything else (new case, edited or replaced source, changed dataset.json or
ignore label, damaged or truncated entry, older format) rebuilds that entry and only that one. A
source rewritten in place with the same size within the file system's mtime resolution is not
noticed (as with ``make``); delete the cache folder to force a rebuild.

**Atomicity.** An entry is written into a temporary sibling ``.<case>.<random>.tmp`` and renamed into
place when complete (an entry being replaced is renamed away first), under an exclusive ``flock`` on
``.lock``; an interrupted build leaves only dot-named leftovers, removed by the next build. Readers
take no lock: :meth:`Entry.map` checks that a file is still the one validated at setup and fails
clearly if another process rebuilt it meanwhile.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import mmap
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skelrecall.data.layout import DatasetLayout
from skelrecall.io import ImageReadError, write_json

FORMAT_VERSION = 1

#: builds one entry: ``(case, split) -> ({name: array}, info)``; arrays become ``<name>.npy``
Builder = Callable[[str, str], tuple[dict[str, np.ndarray], dict[str, Any]]]


class CacheError(RuntimeError):
    """The cache folder cannot be used (not writable, or an entry changed while in use)."""


def default_cache_dir(layout: DatasetLayout) -> Path:
    """``<nnunet_raw>/../cache/<dataset folder>``: with the default paths ``data/cache/DatasetNNN_Name``."""
    return layout.root.parent.parent / "cache" / layout.root.name


def jsonable(meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON-representable part of an image's ``meta`` (arrays and tuples as lists; objects such as a
    NIfTI header are left out: predictions take their geometry from the source files)."""

    def convert(value):
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, (list, tuple)):
            items = [convert(v) for v in value]
            return None if any(i is _SKIP for i in items) else items
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        return _SKIP

    out = {}
    for key, value in meta.items():
        converted = convert(value)
        if converted is not _SKIP and converted is not None:
            out[str(key)] = converted
    return out


_SKIP = object()


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _read_only_map(path: Path, inode: int, shape: Sequence[int], dtype: str) -> np.ndarray:
    """The array of ``path`` (a C-order ``.npy`` of ``shape`` and ``dtype``, as the cache writes them: its
    data end the file) memory-mapped read-only, if the file is still the one with ``inode``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise CacheError(
            f"{path}: cache entry vanished while in use (rebuilt by another process after its "
            "source files changed?); rerun the command"
        ) from None
    try:
        st = os.fstat(fd)
        if st.st_ino != inode:
            raise CacheError(
                f"{path}: cache entry was rebuilt by another process while in use (its source files "
                "changed); rerun the command"
            )
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)  # unmapped when the last array using it is gone
    finally:
        os.close(fd)
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    return np.frombuffer(mapped, dtype, count, st.st_size - count * dtype.itemsize).reshape(shape)


@dataclass(frozen=True)
class Entry:
    """One valid cache entry: its folder, ``entry.json`` content, and the inodes validated at lookup.

    Small to pickle (paths and numbers, no array data): loader workers map the files themselves.
    """

    folder: Path
    arrays: dict[str, dict[str, Any]]
    info: dict[str, Any]
    inodes: dict[str, int] = field(repr=False)

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.npy"

    def map(self, name: str) -> np.ndarray:
        """Array ``name`` memory-mapped read-only: slicing reads only the pages it touches; the mapping
        ends when the returned array (and every view of it) is gone."""
        spec = self.arrays[name]
        return _read_only_map(self.path(name), self.inodes[name], spec["shape"], spec["dtype"])

    def read(self, name: str) -> np.ndarray:
        """Array ``name`` read into memory."""
        return np.array(self.map(name))


class CaseCache:
    """The cache folder of one dataset (see the module docstring for format and rules)."""

    def __init__(
        self, directory: str | os.PathLike, layout: DatasetLayout, *, dims: int, ignore_label: int | None = None
    ):
        self.dir, self.layout = Path(directory), layout
        self.dims, self.ignore_label = int(dims), None if ignore_label is None else int(ignore_label)
        self._dataset_sha: str | None = None

    # --- fingerprints and lookup --------------------------------------------------------------------
    def dataset_sha(self) -> str:
        if self._dataset_sha is None:
            self._dataset_sha = hashlib.sha256((self.layout.root / "dataset.json").read_bytes()).hexdigest()
        return self._dataset_sha

    def sources(self, case: str, split: str) -> list[Path]:
        """The files an entry is made from: the image channels and the label map."""
        return [*self.layout.image_files(case, split), self.layout.label_file(case, split)]

    def fingerprint(self, case: str, split: str) -> dict[str, Any]:
        """What entry ``case`` must have been made from to be used (see the module docstring)."""
        files = []
        for path in self.sources(case, split):
            try:
                st = path.stat()
            except FileNotFoundError:
                raise ImageReadError(f"{path}: file does not exist") from None
            files.append([path.relative_to(self.layout.root).as_posix(), st.st_size, st.st_mtime_ns, st.st_ino])
        return {
            "format": FORMAT_VERSION,
            "dataset_json_sha256": self.dataset_sha(),
            "dims": self.dims,
            "ignore_label": self.ignore_label,
            "split": split,
            "sources": files,
        }

    def folder(self, case: str, split: str) -> Path:
        return self.dir / split / case

    def lookup(self, case: str, split: str, fingerprint: dict[str, Any] | None = None) -> Entry | None:
        """The entry of ``case`` if it is complete and made from the current sources, else ``None``."""
        fingerprint = self.fingerprint(case, split) if fingerprint is None else fingerprint
        folder = self.folder(case, split)
        try:
            content = json.loads((folder / "entry.json").read_text())
            if content.get("format") != FORMAT_VERSION or content.get("fingerprint") != fingerprint:
                return None
            arrays, inodes = content["arrays"], {}
            for name, spec in arrays.items():
                with open(folder / f"{name}.npy", "rb") as fh:
                    st = os.fstat(fh.fileno())
                    version = np.lib.format.read_magic(fh)
                    header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )(fh)
                if st.st_size != spec["bytes"] or header != (tuple(spec["shape"]), False, np.dtype(spec["dtype"])):
                    return None
                inodes[name] = st.st_ino
            return Entry(folder, arrays, content.get("info", {}), inodes)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # missing, unreadable or malformed: rebuild

    # --- building -----------------------------------------------------------------------------------
    def ensure(self, cases: Sequence[str], split: str, build: Builder, *, progress: bool | None = None) -> list[Entry]:
        """The entries of ``cases`` (in order), building the missing and stale ones with ``build`` under
        the lock; ``progress``: a bar (``None``: on terminals only)."""
        fingerprints = {case: self.fingerprint(case, split) for case in cases}
        entries = {case: self.lookup(case, split, fp) for case, fp in fingerprints.items()}
        stale = [case for case, entry in entries.items() if entry is None]
        if stale:
            from tqdm import tqdm

            with self.lock():
                self._remove_leftovers(split)
                for case in stale:  # another process may have built them while this one waited
                    entries[case] = self.lookup(case, split, fingerprints[case])
                todo = [case for case in stale if entries[case] is None]
                if todo:
                    print(
                        f"[skelrecall] caching {len(todo)} of {len(cases)} cases of {self.layout.root.name} "
                        f"in {self.dir}",
                        flush=True,
                    )
                bar = None if progress is None else not progress  # tqdm: None = on terminals only
                for case in tqdm(todo, desc="caching", unit="case", disable=bar, leave=False):
                    entries[case] = self._build(case, split, fingerprints[case], build)
                self._write_manifest(split, {c: fingerprints[c] for c in cases})
        return [entries[case] for case in cases]

    @contextmanager
    def lock(self):
        """Hold an exclusive ``flock`` on ``<cache>/.lock`` (waits for another builder; the kernel releases
        the lock of a process that dies)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not (self.dir / ".gitignore").exists():
                (self.dir / ".gitignore").write_text("# preprocessed cache of skelrecall: never committed\n*\n")
            fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise CacheError(
                f"cannot write the cache folder {self.dir} ({exc.strerror or exc}); set data.cache.dir "
                "to a writable folder or data.cache.enabled=false"
            ) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
                print(
                    f"[skelrecall] {self.dir} is being built by {holder}; waiting for it", file=sys.stderr, flush=True
                )
                fcntl.flock(fd, fcntl.LOCK_EX)
            me = f"pid {os.getpid()} on {socket.gethostname()} (since {time.strftime('%H:%M:%S')})"
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _remove_leftovers(self, split: str) -> None:
        """Temporary and replaced entries of interrupted builds (only lock holders create them)."""
        folder = self.dir / split
        if folder.is_dir():
            for path in folder.iterdir():
                if path.name.startswith(".") and path.name.endswith((".tmp", ".old")):
                    shutil.rmtree(path, ignore_errors=True)

    def _build(self, case: str, split: str, fingerprint: dict[str, Any], build: Builder) -> Entry:
        parent = self.dir / split
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{case}.", suffix=".tmp", dir=parent))
        final, old = self.folder(case, split), None
        try:
            arrays, info = build(case, split)
            specs = {}
            for name, array in arrays.items():
                array = np.ascontiguousarray(array)
                with open(tmp / f"{name}.npy", "wb") as fh:
                    np.save(fh, array, allow_pickle=False)
                specs[name] = {
                    "shape": list(array.shape),
                    "dtype": array.dtype.str,
                    "bytes": (tmp / f"{name}.npy").stat().st_size,
                }
            content = {
                "format": FORMAT_VERSION,
                "case": case,
                "split": split,
                "fingerprint": fingerprint,
                "arrays": specs,
                "info": info,
            }
            (tmp / "entry.json").write_text(json.dumps(content, indent=1) + "\n")
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes it private
            if final.exists():
                old = parent / f".{case}.{uuid.uuid4().hex[:8]}.old"
                final.rename(old)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        entry = self.lookup(case, split, fingerprint)
        if entry is None:  # e.g. a source changed while it was read
            raise CacheError(
                f"{final}: cache entry could not be validated right after building it; did "
                f"{self.layout.root} change meanwhile? Rerun the command"
            )
        return entry

    def _write_manifest(self, split: str, fingerprints: dict[str, dict[str, Any]]) -> None:
        path = self.dir / "manifest.json"
        try:
            manifest = json.loads(path.read_text())
            if manifest.get("format") != FORMAT_VERSION or manifest.get("dataset_json_sha256") != self.dataset_sha():
                manifest = {}
        except (OSError, ValueError, AttributeError):
            manifest = {}
        entries = manifest.get("entries", {})
        entries.setdefault(split, {}).update({case: _digest(fp) for case, fp in fingerprints.items()})
        write_json(
            path,
            {
                "format": FORMAT_VERSION,
                "dataset": str(self.layout.root),
                "dataset_json_sha256": self.dataset_sha(),
                "dims": self.dims,
                "ignore_label": self.ignore_label,
                "entries": entries,
            },
        )
