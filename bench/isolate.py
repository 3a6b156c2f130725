"""Run jobs in forked worker processes that the parent watches and kills: isolation for any method.

Every cell runs in a worker forked from the parent (its modules already imported: a fork costs
milliseconds), never in the parent itself. Whatever a method does there ends its own cell at worst:
``sys.exit``, ``os._exit``, a segfault, ``KeyboardInterrupt`` raised by library code, its own SIGALRM or
SIGPROF handler. The limits are enforced from outside: the parent kills a worker past its wall-clock
deadline, past its CPU-time cap (read from ``/proc/<pid>/stat``: user + system time of all its threads) or
past its memory cap (resident set size read from ``/proc/<pid>/statm``), and forks a fresh one for the next
job. A worker ignores SIGINT (Ctrl-C is the parent's to handle), is the kernel's first choice when memory
runs out (``oom_score_adj``), dies with its parent (``PR_SET_PDEATHSIG`` on Linux), so a parent killed
with SIGKILL leaves no orphan computing on, and leads a process group of its own, which the parent kills
whole, so processes a method started (joblib's loky workers, say) go with it.

A job may announce a CPU-time cap for part of its work with :func:`cpu_cap` (the runner caps a method's fit
in learner fits): the parent then watches that worker's CPU time until the block ends.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe, wait
from typing import Any, Callable, Iterator

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_MB = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) / 2**20
POLL_S = 0.05  # how often the parent reads a watched worker's CPU time and memory


class ChildTimeout(Exception):
    """The child ran past its deadline and was killed."""


class ChildDied(Exception):
    """The child ended without a result (killed by a signal, out of memory, a crash in native code, an exit)."""


_to_parent: Connection | None = None  # set in a worker: where cpu_cap's notices go


@contextmanager
def cpu_cap(seconds: float, message: str, detail: dict[str, Any] | None = None) -> Iterator[None]:
    """Ask the parent to kill this worker once the block has used ``seconds`` of CPU time; the job is then
    reported with ``message`` (and ``detail``). Outside a worker (a direct call) no cap is enforced."""
    if _to_parent is None:
        yield
        return
    _to_parent.send(("cap", (time.process_time(), seconds, message, detail or {})))
    try:
        yield
    finally:
        _to_parent.send(("cap_end", None))


@dataclass
class Outcome:
    """How a job ended: ``kind`` is ``ok`` (``value`` is its result), ``raised`` (a BaseException that is not an
    Exception escaped the job; ``reason`` names it), ``died``, ``timeout``, ``over_cap`` or ``over_memory``."""

    kind: str
    value: Any = None
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0


class Worker:
    """A forked process that runs ``function(job)`` for each job it is sent, one at a time."""

    def __init__(self, function: Callable[[Any], Any]) -> None:
        receive, self._send_end = Pipe(duplex=False)  # parent -> worker: jobs
        self.conn, send = Pipe(duplex=False)  # worker -> parent: notices and results
        self.pid = os.fork()
        if self.pid == 0:
            self.conn.close()
            self._send_end.close()
            _serve(function, receive, send)
        try:
            os.setpgid(self.pid, self.pid)  # its own process group (also set in the child: whichever runs first)
        except OSError:
            pass
        receive.close()
        send.close()
        self.job: Any = None
        self.started = 0.0
        self.deadline: float | None = None
        self.cap: tuple[float, float, str, dict] | None = None
        self._cpu_at_start = 0.0

    def submit(self, job: Any, wall_s: float | None) -> None:
        self.job, self.cap = job, None
        self.started = time.monotonic()
        self.deadline = self.started + wall_s if wall_s else None
        self._cpu_at_start = self.cpu_seconds()
        self._send_end.send(job)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of every thread of the worker so far (0 where /proc is missing)."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        except (OSError, IndexError, ValueError):
            return 0.0

    def rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as f:
                return int(f.read().split()[1]) * PAGE_MB
        except (OSError, IndexError, ValueError):
            return 0.0

    def job_cpu_s(self) -> float:
        return max(self.cpu_seconds() - self._cpu_at_start, 0.0)

    def kill(self) -> str:
        """Kill the worker and whatever it started (its process group), reap it, and say how it ended."""
        for conn in (self.conn, self._send_end):
            conn.close()
        for kill in (os.killpg, os.kill):
            try:
                kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return self.reap()

    def reap(self) -> str:
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return "already reaped"
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        return f"exit status {code}"

    def check_limits(self, memory_mb: float | None) -> Outcome | None:
        """An Outcome when the running job has passed its deadline, its CPU cap or the memory cap, else None."""
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            return Outcome("timeout", reason=f"time limit of {self.deadline - self.started:g} s exceeded "
                                             "(its process was killed)")
        if memory_mb is not None:
            rss = self.rss_mb()
            if rss > memory_mb:
                return Outcome("over_memory", reason=f"memory limit of {memory_mb:g} MB exceeded (resident "
                                                     f"{rss:.0f} MB; its process was killed)")
        if self.cap is not None:
            cpu_at, seconds, message, detail = self.cap
            used = self.cpu_seconds() - cpu_at
            if used > seconds:
                return Outcome("over_cap", reason=message, detail=detail)
        return None


def _serve(function: Callable[[Any], Any], jobs: Connection, results: Connection) -> None:
    """The worker's loop: never returns into the parent's code (``os._exit``)."""
    global _to_parent
    code = 0
    try:
        try:
            os.setpgid(0, 0)  # a group of its own: killing it kills what a method started (joblib workers, ...)
        except OSError:
            pass
        _die_with_parent()
        _first_to_die()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        _to_parent = results
        handlers = _signal_handlers()
        while True:
            try:
                job = jobs.recv()
            except EOFError:
                break
            try:
                value = function(job)
            except BaseException as err:  # noqa: BLE001 - sys.exit, KeyboardInterrupt from a library, ...
                results.send(("raised", f"{type(err).__name__}: {err}" if str(err) else type(err).__name__))
                code = 1
                break  # its state may be anything now: the parent forks a fresh worker
            _restore(handlers)
            _flush()
            results.send(("ok", value))
    except BaseException:  # noqa: BLE001 - nothing may escape a forked child into the parent's code
        code = 1
    finally:
        _flush()
        os._exit(code)


def _flush() -> None:
    """What a job printed reaches its terminal or file: ``os._exit`` would drop Python's buffers."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream is not the worker's problem
            pass


def _signal_handlers() -> dict[int, Any]:
    handlers = {}
    for signum in signal.valid_signals():
        try:
            handlers[signum] = signal.getsignal(signum)
        except (ValueError, OSError):
            pass
    return {s: h for s, h in handlers.items() if h is not None}


def _restore(handlers: dict[int, Any]) -> None:
    """Undo what a job did to signal handlers and interval timers, so the next job starts as the first did."""
    for timer in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
        signal.setitimer(timer, 0)
    for signum, handler in handlers.items():
        if signal.getsignal(signum) is not handler:
            try:
                signal.signal(signum, handler)
            except (ValueError, OSError):
                pass


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the thread that forked it ends (no-op elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _first_to_die() -> None:
    """Make this worker the kernel's first choice when the machine runs out of memory, not the parent."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def run_jobs(function: Callable[[Any], Any], jobs: list[Any], n_workers: int,
             land: Callable[[Any, Outcome], bool | None], wall_s: float | None = None,
             memory_mb: float | None = None) -> None:
    """Compute ``function(job)`` for every job in at most ``n_workers`` forked workers; call ``land(job,
    outcome)`` in this process as each ends, in the order they end (when it returns True, the job is queued
    again: a retry).

    A worker that died, was killed at a limit or let a BaseException escape is replaced by a fresh fork for
    the next job. On any exception here (KeyboardInterrupt included) every worker is killed before it
    propagates, so nothing is left running.
    """
    queue = list(reversed(jobs))
    idle: list[Worker] = []
    busy: dict[Connection, Worker] = {}
    try:
        while queue or busy:
            while queue and len(busy) < n_workers:
                worker = idle.pop() if idle else Worker(function)
                worker.submit(queue.pop(), wall_s)
                busy[worker.conn] = worker
            watched = memory_mb is not None or any(w.cap is not None for w in busy.values())
            deadlines = [w.deadline for w in busy.values() if w.deadline is not None]
            timeout = min([POLL_S] if watched else [1.0] + [max(d - time.monotonic(), 0) for d in deadlines])
            for conn in wait(list(busy), timeout=timeout):
                worker = busy[conn]
                try:
                    kind, value = conn.recv()
                except (EOFError, OSError):
                    del busy[conn]
                    if land(worker.job, _ended(worker, "died", reason=worker.kill())):
                        queue.append(worker.job)
                    continue
                if kind == "cap":
                    worker.cap = value
                elif kind == "cap_end":
                    worker.cap = None
                else:
                    del busy[conn]
                    outcome = _ended(worker, kind, value=value if kind == "ok" else None,
                                     reason=value if kind == "raised" else "")
                    if kind == "ok":
                        idle.append(worker)
                    else:
                        worker.kill()
                    if land(worker.job, outcome):
                        queue.append(worker.job)
            for conn, worker in list(busy.items()):
                outcome = worker.check_limits(memory_mb)
                if outcome is not None:
                    del busy[conn]
                    outcome = _ended(worker, outcome.kind, reason=outcome.reason, detail=outcome.detail)
                    worker.kill()
                    if land(worker.job, outcome):
                        queue.append(worker.job)
    finally:
        for worker in [*busy.values(), *idle]:
            worker.kill()


def _ended(worker: Worker, kind: str, **fields: Any) -> Outcome:
    return Outcome(kind, wall_s=time.monotonic() - worker.started, cpu_s=worker.job_cpu_s(), **fields)


def call_in_child(function: Callable[..., Any], args: tuple, deadline_s: float) -> Any:
    """``function(*args)`` computed in a forked child (:func:`run_jobs` with one job) and returned.

    Raises :class:`ChildTimeout` past ``deadline_s`` (the child is then killed), :class:`ChildDied` when the
    child ended without a result, and ``RuntimeError`` with the child's message when ``function`` raised.
    """
    outcomes: list[Outcome] = []

    def call(job: tuple) -> tuple[str, Any]:
        try:
            return "ok", function(*job)
        except Exception as err:  # noqa: BLE001 - reported to the caller, which decides
            return "error", f"{type(err).__name__}: {err}"

    run_jobs(call, [args], 1, lambda job, outcome: outcomes.append(outcome) and None, wall_s=deadline_s)
    outcome, = outcomes
    if outcome.kind == "timeout":
        raise ChildTimeout(f"no result within {deadline_s:g} s; the process was killed")
    if outcome.kind != "ok":
        raise ChildDied(outcome.reason)
    kind, value = outcome.value
    if kind == "error":
        raise RuntimeError(value)
    return value
