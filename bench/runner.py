"""Run a grid of cells: in parallel with joblib, each under a time limit, each result stored as it lands.

A cell that raises or times out is recorded as failed with its message, and the run goes on. A worker
process that dies (killed, out of memory) loses only the cells it was running: those are rerun one at a
time in a fresh pool (a cell that kills its worker again is recorded failed, alone) and the rest of the
grid goes on in parallel. Cells already in the store are skipped, so an interrupted run resumes where it
was. The metrics' refits can be cached on disk across cells and runs (:mod:`valbench.cache`).
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from joblib import Parallel, delayed, parallel_config
from tqdm import tqdm

from valbench.cache import FitCache
from valbench.grid import Cell
from valbench.isolate import ChildDied, ChildTimeout, call_in_child
from valbench.learners import learner_for
from valbench.measure import measure
from valbench.provenance import current_commit
from valbench.report.labels import method_family
from valbench.metrics import (budget_sizes, class_balance, detection_curve, kmeans_f1, mislabel_auc, removal_curve, subset_value,
                           test_performance)
from valbench.registry import get_dataset, get_method, load_installed, load_plugins
from valbench.store import ResultsStore
from valbench.values import FRAME_KEY, keep_scores, missing_scores, scores_frame

class CellTimeout(Exception):
    """The cell ran past its time limit."""


class OverCap(CellTimeout):
    """The method's fit ran past its cap: ``cap_fits`` times one learner fit on the cell's full train split."""


STATUS_OVER_CAP = "over cap"  # a cell's status when its fit ran past the cap (reports show it by this name)
CAP_FLOOR_S = 10.0  # the least CPU time a capped fit gets: first-call costs (imports, numba compilation) on tiny sets


@contextmanager
def cpu_time_limit(seconds: float, error: Exception) -> Iterator[None]:
    """Raise ``error`` once this process has used ``seconds`` of CPU time inside the block (``ITIMER_PROF``:
    user + system time of all its threads). CPU time, unlike wall time, does not grow when other jobs share
    the cores, so a cap in learner fits means the same on a loaded machine as on an idle one. Main thread
    only (elsewhere a no-op, as :func:`time_limit`); independent of the wall-clock limit's timer."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _raise_on_timer(signal.SIGPROF, signal.ITIMER_PROF, seconds, error):
        yield


@contextmanager
def _raise_on_timer(signum: int, timer: int, seconds: float, error: Exception) -> Iterator[None]:
    """Arm interval ``timer`` for ``seconds`` with a handler of ``signum`` that raises ``error``; disarm it and
    restore the previous handler on leaving (the shared core of the wall-clock and the CPU-time limits)."""

    def expire(signum: int, frame: Any) -> None:
        raise error

    previous = signal.signal(signum, expire)
    signal.setitimer(timer, seconds)
    try:
        yield
    finally:
        signal.setitimer(timer, 0)
        signal.signal(signum, previous)


@contextmanager
def time_limit(seconds: float | None, error: Exception | None = None) -> Iterator[None]:
    """Raise ``error`` (default :class:`CellTimeout`) in this thread after ``seconds`` (main thread of a process
    only; elsewhere :func:`run_cell` moves the cell into a child process, whose main thread it is).

    Nestable: an inner limit never outlasts the enclosing one (that one fires first, with its own error), and
    on leaving it the enclosing timer is re-armed with what is left of it.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return
    outer_left = signal.getitimer(signal.ITIMER_REAL)[0]
    if outer_left and outer_left <= seconds:  # the enclosing limit comes first: let it fire
        yield
        return
    started = time.monotonic()
    try:
        with _raise_on_timer(signal.SIGALRM, signal.ITIMER_REAL, seconds,
                             error or CellTimeout(f"time limit of {seconds:g} s exceeded")):
            yield
    finally:
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - started), 1e-3))


def load_cell_data(cell: Cell):
    """The cell's dataset with its label noise injected (seeded by the cell's seed)."""
    from valbench.datasets.noise import inject_noise

    data = get_dataset(cell.dataset)(seed=cell.seed, **cell.dataset_params)
    return inject_noise(data, cell.noise_rate, seed=cell.seed)


def evaluate_cell(cell: Cell, cache: FitCache | None = None, cap_fits: float | None = None) -> dict[str, Any]:
    """Load data, fit the method (measured), and compute every metric; raises on any failure.

    With ``cache``, the metrics' retraining of the learner on a subset (and on all the data) is looked up
    there first; the method's own fits are never cached (they are what the cell measures).
    With ``cap_fits``, the learner is first fitted once on the whole train split (uncached, timed: this is
    also the cell's full-data accuracy) and the method's fit may take ``cap_fits`` times its CPU time (at
    least :data:`CAP_FLOOR_S`); past it :class:`OverCap` is raised (:func:`cpu_time_limit`). Both are CPU
    seconds of this process, so the cap means the same on a loaded machine as on an idle one.
    """
    data = load_cell_data(cell)
    learner_params = {k: v for k, v in cell.learner.items() if k != "name"}
    make = lambda: learner_for(cell.learner.get("name", "logreg"), data, seed=cell.seed,  # noqa: E731
                               **learner_params)
    ks = budget_sizes(cell.budgets, data.n_train, data.name)
    cls = get_method(cell.method)
    method = cls(**cell.method_params)
    learner = make()
    fit_kwargs = {"budgets": ks} if cls.selects_sets else {}
    capped: dict[str, Any] = {}
    full = None
    if cap_fits:
        full, one_fit = measure(lambda: test_performance(data, make()))
        cap_s = max(cap_fits * one_fit.cpu_s, CAP_FLOOR_S)
        capped = {"learner_fit_s": one_fit.wall_s, "learner_fit_cpu_s": one_fit.cpu_s, "cap_fits": cap_fits,
                  "cap_cpu_s": cap_s}
        over = OverCap(f"{STATUS_OVER_CAP}: the fit ran past {cap_fits:g} learner fits on the full train split "
                       f"({cap_fits:g} x {one_fit.cpu_s:.3g} CPU s = {cap_s:.4g} CPU s)")
        with cpu_time_limit(cap_s, over):
            valuation, cost = measure(lambda: method.fit(data, learner, cell.seed, **fit_kwargs))
    else:
        valuation, cost = measure(lambda: method.fit(data, learner, cell.seed, **fit_kwargs))
    valuation.validate(cell.method, data.n_train, ks if cls.selects_sets else ())
    evaluator = make()
    full = full or test_performance(data, evaluator, cache=cache)
    removal_started = time.perf_counter()
    removal = removal_curve(data, evaluator, valuation.scores, seed=cell.seed, cache=cache)
    removal_s = time.perf_counter() - removal_started
    return {
        "n_train": data.n_train, "n_features": data.n_features, "n_classes": data.n_classes,
        "n_noisy": int(data.noisy_mask.sum()), "learner_params": learner.describe(),
        "budgets": subset_value(data, evaluator, valuation, cell.budgets, seed=cell.seed, cache=cache),
        "full_accuracy": full["accuracy"], "full_balanced_accuracy": full["balanced_accuracy"],
        "full_loss": full["loss"], **class_balance(data),
        "mislabel_auc": mislabel_auc(valuation.scores, data.noisy_mask),
        "detection_curve": detection_curve(valuation.scores, data.noisy_mask, seed=cell.seed),
        "kmeans_f1": kmeans_f1(valuation.scores, data.noisy_mask),
        "removal_curve": removal, "removal_s": removal_s,
        "wall_s": cost.wall_s, "cpu_s": cost.cpu_s, "peak_rss_mb": cost.peak_rss_mb,
        "utility_evals": valuation.utility_evals if valuation.utility_evals is not None else learner.fits,
        "scores_stderr_mean": None if valuation.stderr is None else float(np.mean(valuation.stderr)),
        "extra": {k: v for k, v in valuation.extra.items() if isinstance(v, (int, float, str, bool, type(None)))},
        **capped, FRAME_KEY: scores_frame(data, valuation, cell.budgets, method=cell.method, seed=cell.seed,
                                          noise_rate=cell.noise_rate, params=cell.method_params),
    }


def run_cell(cell: Cell, plugins: tuple[str, ...] = (), time_limit_s: float | None = None,
             threads: int = 1, cache_dir: str | None = None, inflight_dir: str | None = None,
             cap_fits: float | None = None) -> dict[str, Any]:
    """Evaluate one cell in this process and return its record; never raises for a failing method.

    ``cache_dir``: a :class:`valbench.cache.FitCache` directory for the metrics' retraining (None: no cache).
    ``cap_fits``: the method's fit may take that many learner fits (:func:`evaluate_cell`); past it the cell
    is recorded with status ``"over cap"`` (a result: the method does not scale to this cell), not "timeout".
    ``inflight_dir``: where a marker file named by the cell's key stays while the cell runs, so that the
    runner can tell which cells were running when a worker process died (best effort: a worker that cannot
    write there, e.g. on another machine, simply leaves no marker).
    Outside a main thread (a dask worker) the cell runs in a forked child, so that its time limit holds.
    """
    if time_limit_s and threading.current_thread() is not threading.main_thread():
        return _run_cell_in_child(cell, plugins, time_limit_s, threads, cache_dir, inflight_dir, cap_fits)
    torch.set_num_threads(threads)
    load_installed()
    load_plugins(list(plugins))
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record: dict[str, Any] = {"key": cell.key, "dataset": cell.dataset, "method": cell.method, "seed": cell.seed,
                              "noise_rate": cell.noise_rate, "dataset_params": cell.dataset_params,
                              "method_params": cell.method_params, "family": method_family(cell.method),
                              "learner": cell.learner, "budget_fractions": list(cell.budgets), "started_at": started,
                              "host": platform.node(), **current_commit()}
    marker = _mark_inflight(inflight_dir, cell.key)
    t0, c0 = time.perf_counter(), time.process_time()
    cache = None
    try:
        with time_limit(time_limit_s):
            cache = FitCache(cache_dir) if cache_dir else None
            record.update(evaluate_cell(cell, cache, cap_fits), status="ok", error=None)
    except OverCap as err:
        record.update(status=STATUS_OVER_CAP, error=f"{cell.method}: {err}")
    except CellTimeout as err:
        record.update(status="timeout", error=f"{cell.method}: {err}")
    except Exception as err:  # a failing method fails its own cell only
        tail = "".join(traceback.format_exception(err)[-3:])
        record.update(status="failed", error=f"{cell.method}: {type(err).__name__}: {err}", traceback=tail)
    # a limit's signal can land between a no_grad block's switch and its try (inside torch's own context
    # managers, which L-BFGS closures enter hundreds of times): the next cell in this process must not inherit
    # autograd switched off (measured: every hostcp cell after a gradmatch 'over cap' failed without it)
    torch.set_grad_enabled(True)
    record["cell_wall_s"] = time.perf_counter() - t0
    record["cell_cpu_s"] = time.process_time() - c0  # the whole cell's compute, metrics' refits included
    if cache is not None:
        record["fit_cache"] = cache.counts()
    if marker is not None:
        marker.unlink(missing_ok=True)
    return record


KILL_GRACE_S = 10.0  # past the time limit: how long a child's own SIGALRM gets before the parent kills it


def _run_cell_in_child(cell: Cell, plugins: tuple[str, ...], time_limit_s: float, threads: int,
                       cache_dir: str | None, inflight_dir: str | None, cap_fits: float | None) -> dict[str, Any]:
    """:func:`run_cell` where SIGALRM cannot reach (a dask worker thread): in a forked child
    (:mod:`valbench.isolate`) that is killed if it overruns, so a hanging method fails its own cell and frees
    the worker. A child that dies is replaced once, as the local runner reruns a dead worker's cells."""
    load_installed()  # imported once in the worker, inherited by every child instead of imported in each
    load_plugins(list(plugins))
    why = ""
    for _ in range(2):
        try:
            return call_in_child(run_cell, (cell, plugins, time_limit_s, threads, cache_dir, inflight_dir, cap_fits),
                                 deadline_s=time_limit_s + KILL_GRACE_S)
        except ChildTimeout:
            return {**_died_record(cell, ""), "status": "timeout",
                    "error": f"{cell.method}: time limit of {time_limit_s:g} s exceeded (its process was killed)"}
        except ChildDied as err:
            why = f"{err}, twice"
        except RuntimeError as err:
            return {**_died_record(cell, ""), "error": f"{cell.method}: {err}"}
        finally:
            if inflight_dir:
                (Path(inflight_dir) / cell.key).unlink(missing_ok=True)
    return _died_record(cell, why)


def _mark_inflight(directory: str | None, key: str) -> Path | None:
    if not directory:
        return None
    try:
        marker = Path(directory) / key
        marker.write_text(f"{os.getpid()} {platform.node()}\n")
        return marker
    except OSError:
        return None


def _worker_died_errors() -> tuple[type[BaseException], ...]:
    """Exceptions by which joblib or dask report a worker process that died under a cell."""
    from concurrent.futures.process import BrokenProcessPool

    from joblib.externals.loky.process_executor import TerminatedWorkerError

    errors: list[type[BaseException]] = [TerminatedWorkerError, BrokenProcessPool]
    try:
        from distributed.scheduler import KilledWorker
        errors.append(KilledWorker)
    except ImportError:
        pass
    return tuple(errors)


def connect_dask(address: str | None, timeout_s: float = 5.0):
    """A dask.distributed client for ``address`` (a fresh local cluster when None), or a clear error quickly."""
    from valbench.protocol import DataError

    try:
        from dask.distributed import Client
    except ImportError as err:
        raise DataError("--backend dask needs dask.distributed: pip install 'valbench[dask]'") from err
    try:
        return Client(address, timeout=timeout_s) if address else Client(processes=True)
    except (OSError, TimeoutError) as err:
        raise DataError(f"cannot reach the dask scheduler at {address!r} within {timeout_s:g} s: {err}") from err


def _died_record(cell: Cell, why: str) -> dict[str, Any]:
    return {"key": cell.key, "dataset": cell.dataset, "method": cell.method, "seed": cell.seed,
            "noise_rate": cell.noise_rate, "dataset_params": cell.dataset_params,
            "method_params": cell.method_params, "learner": cell.learner, "budget_fractions": list(cell.budgets),
            "status": "failed", "error": f"{cell.method}: worker process died while running this cell ({why})"}


def run_grid(cells: list[Cell], store: ResultsStore, jobs: int = 1, plugins: tuple[str, ...] = (),
             time_limit_s: float | None = None, retry_failed: bool = False, progress: bool = True,
             backend: str = "loky", cache_dir: str | Path | None = None,
             cap_fits: float | None = None, scores: bool = True) -> dict[str, int]:
    """Run every cell not yet in ``store``; return counts of cells done, failed, skipped.

    ``backend`` is a joblib backend name: ``loky`` (local processes) or ``dask`` (the cluster of the
    active ``dask.distributed.Client``; its worker threads run each cell in a forked child, see
    :func:`run_cell`, so time limits hold there too).
    ``cache_dir``: where the metrics cache their fits (:mod:`valbench.cache`); None turns the cache off.
    ``cap_fits``: each method's fit may take that many learner fits on the cell's train split (:func:`run_cell`).
    ``scores``: keep each ok cell's per-point values in ``scores/`` (:mod:`valbench.values`), written before
    its record; a record whose scores file is missing counts as not done.

    When a worker process dies (killed, out of memory, a crash in native code) the pool is lost with every
    cell it was running. Cells already stored stay; the cells that were in flight (their marker files are
    left behind) are then rerun one at a time, each alone in a fresh worker, so that a cell that kills its
    worker again is recorded as failed by itself; the rest of the grid then goes on in parallel. Where no
    marker tells the suspects apart (workers on other machines) every remaining cell is isolated.
    """
    done = store.finished_keys(include_failed=not retry_failed) - missing_scores(store.directory, store.records())
    todo = [c for c in cells if c.key not in done]
    counts = {"total": len(cells), "skipped": len(cells) - len(todo), "ok": 0, "failed": 0}
    bar = tqdm(total=len(cells), initial=counts["skipped"], disable=not progress, unit="cell",
               file=sys.stderr, dynamic_ncols=True)
    inflight = store.directory / ".inflight"
    cache = str(cache_dir) if cache_dir else None

    def land(record: dict[str, Any]) -> None:
        store.append(keep_scores(store.directory, record, scores))
        counts["ok" if record["status"] == "ok" else "failed"] += 1
        bar.update(1)
        bar.set_postfix(failed=counts["failed"])

    def run_parallel(batch: list[Cell], n_jobs: int) -> None:
        with parallel_config(backend=backend, n_jobs=n_jobs):
            results = Parallel(return_as="generator_unordered")(
                delayed(run_cell)(cell, plugins, time_limit_s, 1, cache, str(inflight), cap_fits) for cell in batch)
            for record in results:
                land(record)

    pending = todo
    while pending:
        shutil.rmtree(inflight, ignore_errors=True)
        inflight.mkdir(parents=True, exist_ok=True)
        try:
            run_parallel(pending, jobs)
            break
        except _worker_died_errors() as err:  # keep what landed; find the culprit among the cells in flight
            finished = store.finished_keys()
            left = [c for c in pending if c.key not in finished]
            suspects = [c for c in left if (inflight / c.key).exists()] or left
            print(f"\nworker pool failed ({type(err).__name__}); rerunning {len(suspects)} cell(s) that were "
                  f"running, one at a time; {len(left) - len(suspects)} more to go", file=sys.stderr)
            for cell in suspects:
                try:  # alone in a fresh pool: n_jobs=2 keeps it off the main process for a single cell
                    run_parallel([cell], 2 if backend == "loky" else jobs)
                except _worker_died_errors() as again:
                    land(_died_record(cell, type(again).__name__))
            isolated = {c.key for c in suspects}
            pending = [c for c in left if c.key not in isolated]
    shutil.rmtree(inflight, ignore_errors=True)
    bar.close()
    return counts
