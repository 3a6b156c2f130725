"""The results store: one JSON line per finished cell in ``results.jsonl``, append-only and crash-safe.

Each record is written with a single ``write`` on an ``O_APPEND`` descriptor and fsync'd, so a crash can at
worst leave a truncated *last* line; readers skip such a line, and the next append starts a fresh line. A
short write (a full disk) is undone (the file truncated back) and tried once more, then reported as
:class:`StoreWriteError`: no half record stays. Lines that are not records (a truncated line, a bare number,
a record without its keys, bytes that are not UTF-8) are skipped with one warning that counts them. When a
key occurs twice (``--retry-failed``), the later record wins. Only the run's parent process writes here.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

RESULTS_FILE = "results.jsonl"
REQUIRED_KEYS = ("key", "dataset", "method", "status")  # what every record has, whatever became of its cell


class StoreWriteError(OSError):
    """A record could not be written whole (a full disk, a read-only file system)."""


class ResultsStore:
    """Append-only JSON-lines store of cell records keyed by ``record["key"]``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)  # created by the first append, never by a reader
        self.path = self.directory / RESULTS_FILE

    def _lines(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        skipped: list[int] = []
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    record = None
                if isinstance(record, dict) and all(k in record for k in REQUIRED_KEYS):
                    yield record
                else:
                    skipped.append(number)
        if skipped:
            shown = ", ".join(map(str, skipped[:5])) + (", ..." if len(skipped) > 5 else "")
            warnings.warn(f"{self.path}: skipped {len(skipped)} incomplete record line(s) (line {shown}: "
                          "an interrupted write or an edit); their cells count as not run", stacklevel=3)

    def records(self) -> list[dict[str, Any]]:
        """Every complete record, the last one per key, in file order."""
        latest = {record["key"]: record for record in self._lines()}
        return list(latest.values())

    def finished_keys(self, include_failed: bool = True) -> set[str]:
        return {r["key"] for r in self.records() if include_failed or r.get("status") == "ok"}

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one complete line, durably, or raise :class:`StoreWriteError` leaving none."""
        line = (json.dumps(_finite(record), default=_to_json, allow_nan=False) + "\n").encode()
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if _ends_without_newline(self.path):
                line = b"\n" + line  # seal off a truncated line left by a crash
            for attempt in (1, 2):
                size = os.fstat(fd).st_size
                try:
                    written = os.write(fd, line)
                    if written == len(line):
                        os.fsync(fd)
                        return
                    why = f"wrote {written} of {len(line)} bytes"
                except OSError as err:
                    why = err.strerror or str(err)
                os.ftruncate(fd, size)  # no half record: the file ends where it did
            raise StoreWriteError(f"cannot store a result in {self.path} ({why}; the disk may be full); the records "
                                  "stored before it are intact: free space and rerun the same command to resume")
        finally:
            os.close(fd)


def _ends_without_newline(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1) != b"\n"


def _finite(value: Any) -> Any:
    """The record with NaN / inf floats as None: JSON has no spelling for them."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _to_json(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store a {type(value).__name__} in a result record")
