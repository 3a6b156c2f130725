"""A run directory's rules: one writer at a time, the grids it has held, and outputs that never clobber inputs.

* :func:`exclusive` holds ``.valbench.lock`` (an ``flock`` on a file naming the owner's pid, host and start
  time) for a run, report or summary; a second one on the same directory is refused in one line naming the
  holder. A lock file left by a process that is gone (the kernel dropped its ``flock``) is taken over with
  a warning; one left by another host is refused (this host cannot tell whether it still runs).
* :func:`record_grid` keeps in ``config.json`` every grid the directory has held and refuses a different
  grid unless the run extends it (``--extend``).
* :func:`render_outputs` lets ``report`` and ``summary`` write only into a folder that is a run, replace only
  the files listed in the run's manifest ``.valbench-outputs.json`` (files valbench wrote), and move each
  new file in atomically (rendered in a staging folder, then renamed).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import shutil
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from valbench.protocol import DataError

LOCK_FILE = ".valbench.lock"
MANIFEST_FILE = ".valbench-outputs.json"
CONFIG_FILE = "config.json"
RESULTS_FILE = "results.jsonl"
STAGING_DIR = ".valbench-staging"
GRID_FIELDS = ("methods", "datasets", "seeds", "noise", "budgets", "learner", "dataset_params", "method_params",
               "exclude")  # what decides the cells (their keys); limits such as time_limit do not
T = TypeVar("T")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def exclusive(run_dir: Path, command: str) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block, or raise :class:`DataError` naming the process that holds it."""
    path = run_dir / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise DataError(f"{run_dir} is in use by {_describe(owner)}: one run, report or summary writes a run "
                            "directory at a time; wait for it to end or stop it") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file between our open and our lock: lock the new one
    try:
        _take_over(fd, path, run_dir)
    except DataError:
        os.close(fd)  # not ours to remove
        raise
    try:
        record = {"pid": os.getpid(), "host": platform.node(), "started": _now(), "command": command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield
    finally:
        try:
            os.unlink(path)  # while still holding it, so no one locks a file about to vanish
        except FileNotFoundError:
            pass
        os.close(fd)


def _take_over(fd: int, path: Path, run_dir: Path) -> None:
    """A lock file we could lock but that names an owner: that owner ended without removing it."""
    owner = _read_owner(fd)
    if not owner:
        return
    if owner.get("host") not in (None, platform.node()):
        raise DataError(f"{path} names {_describe(owner)}, on another host, which this host cannot check: if that "
                        f"process has ended, delete {path} and rerun")
    print(f"warning: taking over the lock left by {_describe(owner)}, which is no longer running", file=sys.stderr)


def _read_owner(fd: int) -> dict[str, Any]:
    try:
        owner = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return owner if isinstance(owner, dict) else {}
    except (ValueError, UnicodeDecodeError):
        return {}


def _describe(owner: dict[str, Any]) -> str:
    if not owner:
        return "another valbench process"
    return (f"valbench {owner.get('command', '?')} (pid {owner.get('pid', '?')} on {owner.get('host', '?')}, "
            f"started {owner.get('started', '?')})")


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``config.json`` (None when there is none); a file that is not a JSON object is a usage error."""
    path = run_dir / CONFIG_FILE
    if not path.exists():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON (truncated or edited?): {err}; move it away to start the "
                        "directory's grid history afresh") from None
    if not isinstance(config, dict):
        raise DataError(f"{path} is not a JSON object; move it away to start the directory's grid history afresh")
    return config


def grid_id(config: dict[str, Any]) -> str:
    """A hash of the fields of a grid that decide its cells."""
    canonical = json.dumps({k: config.get(k) for k in GRID_FIELDS}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def record_grid(run_dir: Path, config: Any, plugins: list[str], extend: bool) -> None:
    """Write ``config.json``: the grid the directory holds at the top level, and under ``grids`` every grid run
    into it. A grid other than the one it holds is refused unless ``extend``; the extending grid then becomes the
    one it holds (the cells of both share the directory, and the report covers them all), except a grid whose
    cells the held grid already asks for (a rerun of part of it, e.g. one method after a fix), which is recorded
    in ``grids`` and leaves the held grid in place, so that the report still counts all of its cells."""
    current = {**dataclasses.asdict(config), "plugins": plugins}
    old = read_config(run_dir)
    grids = list((old or {}).get("grids") or ([] if old is None else [{k: old.get(k) for k in GRID_FIELDS}]))
    new_id = grid_id(current)
    another = old is not None and grid_id(old) != new_id
    if another and not extend:
        raise DataError(f"{run_dir} holds a different grid (config.json); add --extend to run this grid into "
                        "the same directory beside it, or give another --run-id")
    if not grids or grid_id(grids[-1]) != new_id:
        grids.append({**{k: current[k] for k in GRID_FIELDS}, "grid_id": new_id, "first_run": _now()})
    top = current
    if another and _cells_within(current, old):
        top = {k: v for k, v in old.items() if k != "grids"}
    write_atomically(run_dir / CONFIG_FILE, json.dumps({**top, "grids": grids}, indent=2).encode())
    add_to_manifest(run_dir, [CONFIG_FILE, RESULTS_FILE])


def _cells_within(grid: dict[str, Any], held: dict[str, Any]) -> bool:
    """Whether every cell of ``grid`` is a cell of ``held`` (both config.json dicts); False when ``held`` no
    longer expands (a method or plugin gone)."""
    from valbench.grid import GridConfig

    def keys(config: dict[str, Any]) -> set[str]:
        return {cell.key for cell in GridConfig.from_record(config).cells()}

    try:
        return keys(grid) <= keys(held)
    except Exception:  # noqa: BLE001 - the held grid cannot be expanded by this code: it is not kept
        return False


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary file and a rename: a reader sees the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def manifest(run_dir: Path) -> set[str]:
    try:
        names = json.loads((run_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
        return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()
    except (OSError, ValueError, UnicodeDecodeError):
        return set()


def add_to_manifest(run_dir: Path, names: list[str]) -> None:
    write_atomically(run_dir / MANIFEST_FILE, json.dumps(sorted(manifest(run_dir) | set(names))).encode())


def check_is_run(run_dir: Path) -> None:
    """Refuse a path that is not a run directory (one with ``results.jsonl`` or ``config.json``)."""
    if not run_dir.is_dir():
        raise DataError(f"run directory {run_dir} does not exist (give a folder a run wrote, e.g. reports/latest)")
    if not (run_dir / RESULTS_FILE).is_file() and not (run_dir / CONFIG_FILE).is_file():
        raise DataError(f"{run_dir} is not a valbench run directory (no {RESULTS_FILE} or {CONFIG_FILE}); "
                        "give a folder a run wrote, e.g. reports/latest")


def render_outputs(run_dir: Path, render: Callable[[Path], T]) -> T:
    """Call ``render(folder)`` on a staging copy of the run (its inputs linked in), then move every file it
    wrote into ``run_dir`` by rename, and delete the outputs of an earlier rendering that this one no longer
    writes. Refused, before anything is written, when ``run_dir`` is not a run or when a file of the same name
    is there that valbench did not write (not in the manifest). A directory without a manifest (written by an
    older valbench) adopts the files it has. Returns what ``render`` returned, with staging paths mapped back.
    """
    check_is_run(run_dir)
    owned = manifest(run_dir)
    legacy = not (run_dir / MANIFEST_FILE).exists()
    stage_root = run_dir / STAGING_DIR
    shutil.rmtree(stage_root, ignore_errors=True)
    stage = stage_root / run_dir.resolve().name  # the same folder name: renderers print it
    stage.mkdir(parents=True)
    try:
        for entry in run_dir.iterdir():  # the inputs only: a renderer writing through a link would hit the original
            if entry.name in (CONFIG_FILE, RESULTS_FILE) or (entry.is_dir() and entry.name not in owned
                                                             and not entry.name.startswith(".")):
                (stage / entry.name).symlink_to(entry.resolve())
        result = render(stage)
        written = sorted(p.name for p in stage.iterdir() if not p.is_symlink())
        foreign = [n for n in written if (run_dir / n).exists() and n not in owned and not legacy]
        if foreign:
            raise DataError(f"{run_dir / foreign[0]} exists and was not written by valbench (it is not in "
                            f"{MANIFEST_FILE}); move it away, then rerun (nothing was written)")
        for name in written:
            target = run_dir / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(stage / name, target)
        for stale in owned - set(written) - {CONFIG_FILE, RESULTS_FILE}:
            path = run_dir / stale
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        add_to_manifest(run_dir, written)
        if legacy:
            add_to_manifest(run_dir, [CONFIG_FILE, RESULTS_FILE])
    finally:
        shutil.rmtree(stage_root, ignore_errors=True)
    if isinstance(result, Path) and result.parent.resolve() == stage.resolve():
        return run_dir / result.name  # type: ignore[return-value]
    if isinstance(result, str):  # a printed answer names the files it wrote: name them where they now are
        return result.replace(str(stage), str(run_dir))  # type: ignore[return-value]
    return result
