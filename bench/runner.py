"""Run a grid of cells, each in a forked worker process under limits the parent enforces, each result
stored by the parent as it lands.

Whatever a method does (raise, exit, crash, hang, eat memory, change signal handlers) ends its own cell,
recorded as failed, timed out or over cap with the reason, and the run goes on (:mod:`valbench.isolate`),
at every ``--jobs``. Cells already in the store are skipped, so an interrupted run resumes where it was.
The metrics' refits can be cached on disk across cells and runs (:mod:`valbench.cache`).
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
from typing import Any, Callable, Iterator

import numpy as np
import torch
from joblib import Parallel, delayed, parallel_config
from tqdm import tqdm

from valbench.cache import FitCache
from valbench.grid import Cell
from valbench.isolate import Outcome, cpu_cap, run_jobs
from valbench.learners import learner_for
from valbench.measure import measure
from valbench.provenance import current_commit
from valbench.report.labels import method_family
from valbench.metrics import (budget_sizes, class_balance, detection_curve, kmeans_f1, mislabel_auc, removal_curve, subset_value,
                           test_performance, timed_full_performance)
from valbench.registry import get_dataset, get_method, load_installed, load_plugins
from valbench.store import ResultsStore
from valbench.values import FRAME_KEY, keep_scores, missing_scores, scores_frame

STATUS_OVER_CAP = "over cap"  # a cell's status when its fit ran past the cap (reports show it by this name)
CAP_FLOOR_S = 10.0  # the least CPU time a capped fit gets: first-call costs (imports, numba compilation) on tiny sets


def load_cell_data(cell: Cell):
    """The cell's dataset with its label noise injected (seeded by the cell's seed)."""
    from valbench.datasets.noise import inject_noise

    data = get_dataset(cell.dataset)(seed=cell.seed, **cell.dataset_params)
    return inject_noise(data, cell.noise_rate, seed=cell.seed)


def evaluate_cell(cell: Cell, cache: FitCache | None = None, cap_fits: float | None = None) -> dict[str, Any]:
    """Load data, fit the method (measured), and compute every metric; raises on any failure.

    With ``cache``, the metrics' retraining of the learner on a subset (and on all the data) is looked up
    there first; the method's own fits are never cached (they are what the cell measures).
    With ``cap_fits``, the learner is first fitted once on the whole train split (timed: this is also the
    cell's full-data accuracy; with ``cache``, fitted and timed once per dataset, seed, noise and learner, and
    read back by the other cells, :func:`~valbench.metrics.timed_full_performance`) and the method's fit may take
    ``cap_fits`` times its CPU time (at least :data:`CAP_FLOOR_S`); past it the parent kills this worker
    (:func:`valbench.isolate.cpu_cap`; no cap when called outside a worker). Both are CPU seconds, so the cap
    means the same on a loaded machine as on an idle one.
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
    method.prepare()  # one-off per process (JIT compilation): outside the timed fit and its cap
    capped: dict[str, Any] = {}
    full = None
    if cap_fits:
        full, one_fit = timed_full_performance(data, make(), cache)
        cap_s = max(cap_fits * one_fit.cpu_s, CAP_FLOOR_S)
        capped = {"learner_fit_s": one_fit.wall_s, "learner_fit_cpu_s": one_fit.cpu_s, "cap_fits": cap_fits,
                  "cap_cpu_s": cap_s}
        over = (f"{STATUS_OVER_CAP}: the fit ran past {cap_fits:g} learner fits on the full train split "
                f"({cap_fits:g} x {one_fit.cpu_s:.3g} CPU s = {cap_s:.4g} CPU s)")
        with cpu_cap(cap_s, over, capped):
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


def cell_record(cell: Cell) -> dict[str, Any]:
    """The fields of a cell's record that say what ran (every record has them, whatever became of the cell)."""
    return {"key": cell.key, "dataset": cell.dataset, "method": cell.method, "seed": cell.seed,
            "noise_rate": cell.noise_rate, "dataset_params": cell.dataset_params,
            "method_params": cell.method_params, "family": method_family(cell.method), "learner": cell.learner,
            "budget_fractions": list(cell.budgets)}


def compute_cell(job: tuple[Cell, int, str | None, float | None]) -> dict[str, Any]:
    """Evaluate one cell (in a worker process) and return its record; an Exception fails the cell only.

    ``job`` = (cell, torch threads, fit-cache directory or None, cap in learner fits or None).
    """
    cell, threads, cache_dir, cap_fits = job
    torch.set_num_threads(threads)
    record = {**cell_record(cell), "started_at": _now(), "host": platform.node(), **current_commit()}
    t0, c0 = time.perf_counter(), time.process_time()
    cache = None
    try:
        cache = FitCache(cache_dir) if cache_dir else None
        record.update(evaluate_cell(cell, cache, cap_fits), status="ok", error=None)
    except Exception as err:  # a failing method fails its own cell only
        tail = "".join(traceback.format_exception(err)[-3:])
        record.update(status="failed", error=f"{cell.method}: {type(err).__name__}: {err}", traceback=tail)
    # a method can leave autograd switched off (inside torch's own context managers): the worker's next cell
    # must not inherit it (measured: every hostcp cell after a gradmatch 'over cap' failed without it)
    torch.set_grad_enabled(True)
    record["cell_wall_s"] = time.perf_counter() - t0
    record["cell_cpu_s"] = time.process_time() - c0  # the whole cell's compute, metrics' refits included
    if cache is not None:
        record["fit_cache"] = cache.counts()
    return record


def outcome_record(cell: Cell, outcome: Outcome) -> dict[str, Any]:
    """The record of a cell from how its worker ended: its own record, or one the parent writes for it."""
    if outcome.kind == "ok":
        return outcome.value
    status, why = {
        "timeout": ("timeout", outcome.reason),
        "over_cap": (STATUS_OVER_CAP, outcome.reason),
        "over_memory": ("failed", outcome.reason),
        "raised": ("failed", f"raised {outcome.reason}; its process was ended, the other cells go on"),
        "died": ("failed", f"its process died while running this cell ({outcome.reason})"),
    }[outcome.kind]
    return {**cell_record(cell), "started_at": _now(), "host": platform.node(), **current_commit(), **outcome.detail,
            "status": status, "error": f"{cell.method}: {why}", "cell_wall_s": outcome.wall_s,
            "cell_cpu_s": outcome.cpu_s}


def run_isolated(cells: list[Cell], jobs: int, store_cell: Callable[[dict[str, Any]], None],
                 time_limit_s: float | None = None, threads: int = 1, cache_dir: str | None = None,
                 cap_fits: float | None = None, memory_limit_mb: float | None = None) -> None:
    """Run ``cells`` in at most ``jobs`` forked workers (:func:`valbench.isolate.run_jobs`), calling
    ``store_cell(record)`` here as each ends. Plugins must be loaded before (the workers inherit them).

    A cell whose process died (a signal, an exit without a result) is run once more in a fresh worker: a
    worker killed from outside (the kernel's out-of-memory killer making room for another) should not cost
    the cell its result; a cell that dies twice is recorded failed, with both deaths' reason.
    """
    deaths: dict[str, str] = {}

    def land(job: tuple, outcome: Outcome) -> bool:
        cell = job[0]
        if outcome.kind == "died" and cell.key not in deaths:
            deaths[cell.key] = outcome.reason
            return True
        if outcome.kind == "died":
            first = deaths[cell.key]
            outcome.reason = f"{first}, twice" if first == outcome.reason else f"{first}, then {outcome.reason}"
        store_cell(outcome_record(cell, outcome))
        return False

    run_jobs(compute_cell, [(cell, threads, cache_dir, cap_fits) for cell in cells], max(jobs, 1), land,
             wall_s=time_limit_s, memory_mb=memory_limit_mb)


def run_cell(cell: Cell, plugins: tuple[str, ...] = (), time_limit_s: float | None = None,
             threads: int = 1, cache_dir: str | None = None, inflight_dir: str | None = None,
             cap_fits: float | None = None, memory_limit_mb: float | None = None) -> dict[str, Any]:
    """Evaluate one cell in a forked worker (:func:`run_isolated`) and return its record; never raises for
    a failing method. What a dask task runs: the cell's time, CPU and memory limits hold in any thread.

    ``cache_dir``: a :class:`valbench.cache.FitCache` directory for the metrics' retraining (None: no cache).
    ``cap_fits``: the method's fit may take that many learner fits (:func:`evaluate_cell`); past it the cell
    is recorded with status ``"over cap"`` (a result: the method does not scale to this cell), not "timeout".
    ``inflight_dir``: where a marker file named by the cell's key stays while the cell runs, so that the
    runner can tell which cells were running when a dask worker died (best effort).
    """
    load_installed()  # imported once in this process, inherited by every fork instead of imported in each
    load_plugins(list(plugins))
    marker = _mark_inflight(inflight_dir, cell.key)
    records: list[dict[str, Any]] = []
    try:
        run_isolated([cell], 1, records.append, time_limit_s, threads, cache_dir, cap_fits, memory_limit_mb)
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)
    return records[0]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


class RunStopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached the run: it stops as on Ctrl-C (workers killed, what was stored kept)."""


@contextmanager
def stop_on_termination() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`RunStopped` in this (main) thread for the block, so that the
    workers are killed and the store is left between two records, as on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise RunStopped(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_grid(cells: list[Cell], store: ResultsStore, jobs: int = 1, plugins: tuple[str, ...] = (),
             time_limit_s: float | None = None, retry_failed: bool = False, progress: bool = True,
             backend: str = "loky", cache_dir: str | Path | None = None,
             cap_fits: float | None = None, memory_limit_mb: float | None = None,
             scores: bool = True) -> dict[str, int]:
    """Run every cell not yet in ``store``; return counts of cells done, failed, skipped.

    ``backend``: ``loky`` (this machine: every cell in a forked worker process, :func:`run_isolated`, at
    every ``jobs``) or ``dask`` (the cluster of the active ``dask.distributed.Client``; each task forks a
    worker for its cell, :func:`run_cell`). This process alone writes the store, one record per cell
    (:meth:`ResultsStore.append`), as each cell ends.
    ``cache_dir``: where the metrics cache their fits (:mod:`valbench.cache`); None turns the cache off.
    ``cap_fits``: each method's fit may take that many learner fits on the cell's train split (:func:`run_cell`).
    ``memory_limit_mb``: a cell's worker is killed past that resident memory (None: no limit).
    ``scores``: keep each ok cell's per-point values in ``scores/`` (:mod:`valbench.values`), written before
    its record; a record whose scores file is missing counts as not done.
    """
    done = store.finished_keys(include_failed=not retry_failed) - missing_scores(store.directory, store.records())
    todo = [c for c in cells if c.key not in done]
    counts = {"total": len(cells), "skipped": len(cells) - len(todo), "ok": 0, "failed": 0}
    bar = tqdm(total=len(cells), initial=counts["skipped"], disable=not progress, unit="cell",
               file=sys.stderr, dynamic_ncols=True)
    cache = str(cache_dir) if cache_dir else None

    def store_cell(record: dict[str, Any]) -> None:
        """Store one finished cell (the one place a record reaches the store): its scores file, then its record."""
        store.append(keep_scores(store.directory, record, scores))
        counts["ok" if record["status"] == "ok" else "failed"] += 1
        bar.update(1)
        bar.set_postfix(failed=counts["failed"])

    try:
        with stop_on_termination():
            if backend == "dask":
                _run_on_dask(todo, store, store_cell, plugins, time_limit_s, cache, cap_fits, memory_limit_mb)
            else:
                load_installed()
                load_plugins(list(plugins))
                run_isolated(todo, jobs if jobs > 0 else os.cpu_count() or 1, store_cell, time_limit_s, 1, cache,
                             cap_fits, memory_limit_mb)
    finally:
        bar.close()
    return counts


def _run_on_dask(cells: list[Cell], store: ResultsStore, store_cell: Callable[[dict[str, Any]], None],
                 plugins: tuple[str, ...], time_limit_s: float | None, cache: str | None,
                 cap_fits: float | None, memory_limit_mb: float | None) -> None:
    """The cells as joblib tasks on the active dask client. A dask worker killed under its tasks loses the
    pool's cells in flight (marker files tell which): those are rerun one at a time, the rest in parallel."""
    inflight = store.directory / ".inflight"

    def run_parallel(batch: list[Cell]) -> None:
        with parallel_config(backend="dask", n_jobs=-1):
            results = Parallel(return_as="generator_unordered")(
                delayed(run_cell)(cell, plugins, time_limit_s, 1, cache, str(inflight), cap_fits, memory_limit_mb)
                for cell in batch)
            for record in results:
                store_cell(record)

    pending = cells
    while pending:
        shutil.rmtree(inflight, ignore_errors=True)
        inflight.mkdir(parents=True, exist_ok=True)
        try:
            run_parallel(pending)
            break
        except _worker_died_errors() as err:  # keep what landed; find the culprit among the cells in flight
            finished = store.finished_keys()
            left = [c for c in pending if c.key not in finished]
            suspects = [c for c in left if (inflight / c.key).exists()] or left
            print(f"\nworker pool failed ({type(err).__name__}); rerunning {len(suspects)} cell(s) that were "
                  f"running, one at a time; {len(left) - len(suspects)} more to go", file=sys.stderr)
            for cell in suspects:
                try:
                    run_parallel([cell])
                except _worker_died_errors() as again:
                    store_cell(outcome_record(cell, Outcome("died", reason=type(again).__name__)))
            isolated = {c.key for c in suspects}
            pending = [c for c in left if c.key not in isolated]
    shutil.rmtree(inflight, ignore_errors=True)
