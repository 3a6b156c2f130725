"""Which code produced a cell: the git commit of the valbench source tree and whether it had uncommitted changes.

Every record carries ``commit`` (40 hex digits, or None when the code does not run from a git checkout, e.g.
an installed wheel) and ``dirty`` (True when tracked files differed from that commit, None when unknown), so
a report can list the commits behind its cells. Asked once per process: the tree does not change under a
run that is reading it (and a second ``git status`` per cell would cost more than small cells do).
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().parent  # bench/, inside the repository when installed editable


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(SOURCE), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def current_commit() -> dict[str, str | bool | None]:
    """``{"commit": sha or None, "dirty": bool or None}`` for the source tree this code was loaded from."""
    sha = _git("rev-parse", "HEAD")
    if sha is None:
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": sha.strip(), "dirty": None if status is None else bool(status.strip())}
