"""The results store: one JSON line per finished cell in ``results.jsonl``, append-only and crash-safe.

Each record is written with a single ``write`` on an ``O_APPEND`` descriptor and fsync'd, so a crash can at
worst leave a truncated *last* line; readers skip such a line with a warning, and the next append starts a
fresh line. When a key occurs twice (``--retry-failed``), the later record wins.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

RESULTS_FILE = "results.jsonl"


class ResultsStore:
    """Append-only JSON-lines store of cell records keyed by ``record["key"]``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / RESULTS_FILE

    def _lines(self) -> Iterator[tuple[int, dict[str, Any]]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError:
                    warnings.warn(f"{self.path}:{number}: ignoring an incomplete record "
                                  "(a run was interrupted while writing it); that cell will be rerun",
                                  stacklevel=2)

    def records(self) -> list[dict[str, Any]]:
        """Every complete record, the last one per key, in file order."""
        latest = {record["key"]: record for _, record in self._lines() if "key" in record}
        return list(latest.values())

    def finished_keys(self, include_failed: bool = True) -> set[str]:
        return {r["key"] for r in self.records() if include_failed or r.get("status") == "ok"}

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one complete line, durably."""
        line = (json.dumps(_finite(record), default=_to_json, allow_nan=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if _ends_without_newline(self.path):
                line = b"\n" + line  # seal off a truncated line left by a crash
            os.write(fd, line)
            os.fsync(fd)
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
