"""Call a function in a forked child process under a hard deadline: a time limit that works in any thread.

The runner's SIGALRM time limit only reaches a process's main thread, but dask runs tasks in worker
threads, and no thread can be stopped from outside. So there, each cell runs in a child forked from the
worker (its modules already imported: the fork costs milliseconds): the child is the main thread of its own
process, so its SIGALRM limit applies, and if it still overruns (stuck in native code) the parent kills it
at the deadline. Either way the worker thread is free again. The child dies with its parent
(``PR_SET_PDEATHSIG`` on Linux), so a worker killed under a cell leaves no orphan computing on.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import select
import signal
import time
from typing import Any, Callable


class ChildTimeout(Exception):
    """The child ran past its deadline and was killed."""


class ChildDied(Exception):
    """The child ended without a result (killed by a signal, out of memory, a crash in native code)."""


def call_in_child(function: Callable[..., Any], args: tuple, deadline_s: float) -> Any:
    """``function(*args)`` computed in a forked child and returned through a pipe (pickled).

    Raises :class:`ChildTimeout` when no result came within ``deadline_s`` seconds (the child is then
    killed), :class:`ChildDied` when the child ended without one, and ``RuntimeError`` with the child's
    message when ``function`` raised.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, write, and leave without running the parent's exit handlers
        os.close(read_fd)
        _child(function, args, write_fd)
    os.close(write_fd)
    try:
        payload = _read_until(read_fd, time.monotonic() + deadline_s)
    finally:
        os.close(read_fd)
    if payload is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise ChildTimeout(f"no result within {deadline_s:g} s; the process was killed")
    _, status = os.waitpid(pid, 0)
    if not payload:
        code = os.waitstatus_to_exitcode(status)
        raise ChildDied(f"signal {-code}" if code < 0 else f"exit status {code}")
    kind, value = pickle.loads(payload)
    if kind == "error":
        raise RuntimeError(value)
    return value


def _child(function: Callable[..., Any], args: tuple, write_fd: int) -> None:
    code = 0
    try:
        _die_with_parent()
        for signum in (signal.SIGINT, signal.SIGTERM):  # the worker's handlers are not the child's business
            signal.signal(signum, signal.SIG_DFL)
        try:
            payload = pickle.dumps(("ok", function(*args)))
        except BaseException as err:  # noqa: BLE001 - reported to the parent, which decides
            payload = pickle.dumps(("error", f"{type(err).__name__}: {err}"))
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(payload)
    except BaseException:  # noqa: BLE001 - nothing may escape a forked child into the parent's code
        code = 1
    finally:
        os._exit(code)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the thread that forked it ends (no-op elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything written to ``fd`` until the writer closes it, or None if the deadline passes first."""
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
