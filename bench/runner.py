"""Run a grid of cells: in parallel with joblib, each under a time limit, each result stored as it lands.

A cell that raises or times out is recorded as failed with its message, and the run goes on. A worker
process that dies (killed, out of memory) loses only the cells it was running: the pool is restarted for
the remaining ones. Cells already in the store are skipped, so an interrupted run resumes where it was.
"""

from __future__ import annotations

import platform
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

import numpy as np
import torch
from joblib import Parallel, delayed, parallel_config
from tqdm import tqdm

from bench.grid import Cell
from bench.learners import make_learner
from bench.measure import measure
from bench.metrics import budget_sizes, detection_curve, mislabel_auc, subset_value, test_performance
from bench.registry import get_dataset, get_method, load_builtin, load_plugins
from bench.store import ResultsStore

MAX_POOL_RESTARTS = 3


class CellTimeout(Exception):
    """The cell ran past its time limit."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CellTimeout` in this thread after ``seconds`` (main thread of a process only)."""
    import threading

    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise CellTimeout(f"time limit of {seconds:g} s exceeded")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_cell_data(cell: Cell):
    """The cell's dataset with its label noise injected (seeded by the cell's seed)."""
    from datasets.noise import inject_noise

    data = get_dataset(cell.dataset)(seed=cell.seed, **cell.dataset_params)
    return inject_noise(data, cell.noise_rate, seed=cell.seed)


def evaluate_cell(cell: Cell) -> dict[str, Any]:
    """Load data, fit the method (measured), and compute every metric; raises on any failure."""
    data = load_cell_data(cell)
    learner_params = {k: v for k, v in cell.learner.items() if k != "name"}
    make = lambda: make_learner(cell.learner.get("name", "logreg"), data.n_features, data.n_classes,  # noqa: E731
                                seed=cell.seed, **learner_params)
    ks = budget_sizes(cell.budgets, data.n_train, data.name)
    cls = get_method(cell.method)
    method = cls(**cell.method_params)
    learner = make()
    fit_kwargs = {"budgets": ks} if cls.selects_sets else {}
    valuation, cost = measure(lambda: method.fit(data, learner, cell.seed, **fit_kwargs))
    valuation.validate(cell.method, data.n_train, ks if cls.selects_sets else ())
    evaluator = make()
    full = test_performance(data, evaluator)
    return {
        "n_train": data.n_train, "n_features": data.n_features, "n_classes": data.n_classes,
        "n_noisy": int(data.noisy_mask.sum()), "learner_params": learner.describe(),
        "budgets": subset_value(data, evaluator, valuation, cell.budgets, seed=cell.seed),
        "full_accuracy": full["accuracy"], "full_loss": full["loss"],
        "mislabel_auc": mislabel_auc(valuation.scores, data.noisy_mask),
        "detection_curve": detection_curve(valuation.scores, data.noisy_mask, seed=cell.seed),
        "wall_s": cost.wall_s, "cpu_s": cost.cpu_s, "peak_rss_mb": cost.peak_rss_mb,
        "utility_evals": valuation.utility_evals if valuation.utility_evals is not None else learner.fits,
        "scores_stderr_mean": None if valuation.stderr is None else float(np.mean(valuation.stderr)),
        "extra": {k: v for k, v in valuation.extra.items() if isinstance(v, (int, float, str, bool, type(None)))},
    }


def run_cell(cell: Cell, plugins: tuple[str, ...] = (), time_limit_s: float | None = None,
             threads: int = 1) -> dict[str, Any]:
    """Evaluate one cell in this process and return its record; never raises for a failing method."""
    torch.set_num_threads(threads)
    load_builtin()
    load_plugins(list(plugins))
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record: dict[str, Any] = {"key": cell.key, "dataset": cell.dataset, "method": cell.method, "seed": cell.seed,
                              "noise_rate": cell.noise_rate, "dataset_params": cell.dataset_params,
                              "method_params": cell.method_params, "learner": cell.learner,
                              "budget_fractions": list(cell.budgets), "started_at": started,
                              "host": platform.node()}
    t0 = time.perf_counter()
    try:
        with time_limit(time_limit_s):
            record.update(evaluate_cell(cell), status="ok", error=None)
    except CellTimeout as err:
        record.update(status="timeout", error=f"{cell.method}: {err}")
    except Exception as err:  # a failing method fails its own cell only
        tail = "".join(traceback.format_exception(err)[-3:])
        record.update(status="failed", error=f"{cell.method}: {type(err).__name__}: {err}", traceback=tail)
    record["cell_wall_s"] = time.perf_counter() - t0
    return record


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
    from bench.protocol import DataError

    try:
        from dask.distributed import Client
    except ImportError as err:
        raise DataError("--backend dask needs dask.distributed: pip install 'valbench[dask]'") from err
    try:
        return Client(address, timeout=timeout_s) if address else Client(processes=True)
    except (OSError, TimeoutError) as err:
        raise DataError(f"cannot reach the dask scheduler at {address!r} within {timeout_s:g} s: {err}") from err


def run_grid(cells: list[Cell], store: ResultsStore, jobs: int = 1, plugins: tuple[str, ...] = (),
             time_limit_s: float | None = None, retry_failed: bool = False, progress: bool = True,
             backend: str = "loky") -> dict[str, int]:
    """Run every cell not yet in ``store``; return counts of cells done, failed, skipped.

    ``backend`` is a joblib backend name: ``loky`` (local processes) or ``dask`` (the cluster of the
    active ``dask.distributed.Client``; time limits then apply only where cells run in a main thread).
    """
    done = store.finished_keys(include_failed=not retry_failed)
    todo = [c for c in cells if c.key not in done]
    counts = {"total": len(cells), "skipped": len(cells) - len(todo), "ok": 0, "failed": 0}
    bar = tqdm(total=len(cells), initial=counts["skipped"], disable=not progress, unit="cell",
               file=sys.stderr, dynamic_ncols=True)
    for attempt in range(MAX_POOL_RESTARTS + 1):
        try:
            with parallel_config(backend=backend, n_jobs=jobs):
                results = Parallel(return_as="generator_unordered")(
                    delayed(run_cell)(cell, plugins, time_limit_s) for cell in todo)
                for record in results:
                    store.append(record)
                    counts["ok" if record["status"] == "ok" else "failed"] += 1
                    bar.update(1)
                    bar.set_postfix(failed=counts["failed"])
            break
        except _worker_died_errors() as err:  # keep what landed, rerun the rest on a fresh pool
            finished = store.finished_keys()
            todo = [c for c in todo if c.key not in finished]
            print(f"\nworker pool failed ({type(err).__name__}: {err}); {len(todo)} cells left", file=sys.stderr)
            if attempt == MAX_POOL_RESTARTS:
                for cell in todo:
                    store.append({"key": cell.key, "dataset": cell.dataset, "method": cell.method,
                                  "seed": cell.seed, "noise_rate": cell.noise_rate, "status": "failed",
                                  "error": f"{cell.method}: worker process died ({type(err).__name__})"})
                    counts["failed"] += 1
    bar.close()
    return counts
