"""``python -m valbench``: list what is registered, run a grid, summarise a run.

Exit status: 0 when the run completed (failed cells are results, recorded in the store), 2 for a usage
error (unknown name, bad budget or noise rate, unreadable config, a run directory in use, a disk that
refuses a record), 130 when stopped by Ctrl-C, SIGTERM or SIGHUP (what was stored is kept: rerun to resume).
Every refusal is one line on stderr (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import warnings
from pathlib import Path

from valbench.cache import default_cache_dir
from valbench.grid import GridConfig, parse_assignment
from valbench.keep.cli import add_select_parser, command_select
from valbench.learners import LEARNERS
from valbench.protocol import DataError
from valbench.registry import (DATASETS, METHODS, UNAVAILABLE, UnknownNameError, describe_method, load_installed,
                            load_plugins)
from valbench.runner import RunStopped, connect_dask, run_grid
from valbench.rundir import check_is_run, exclusive, record_grid, render_outputs
from valbench.store import ResultsStore, StoreWriteError


def _csv(kind):
    def parse(text: str) -> list:
        return [kind(v) for v in text.split(",") if v.strip()]

    parse.__name__ = f"comma-separated {kind.__name__}"  # argparse names it in "invalid ... value"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="valbench", description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import a module (dotted name or .py file) that registers extra methods")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list registered methods and datasets")

    run = sub.add_parser("run", help="run a benchmark grid")
    run.add_argument("--config", type=Path, help="TOML grid; flags below override its entries")
    run.add_argument("--methods", type=_csv(str))
    run.add_argument("--datasets", type=_csv(str))
    run.add_argument("--seeds", type=_csv(int))
    run.add_argument("--noise", type=_csv(float), help="label-noise rates in [0, 1)")
    run.add_argument("--budgets", type=_csv(float), help="subset sizes: fractions in (0, 1] or point counts")
    run.add_argument("--learner", choices=sorted(LEARNERS),
                     help="logreg (default), mlp, or cnn (image datasets; settings in a config's [learner])")
    run.add_argument("--set", action="append", default=[], metavar="METHOD.PARAM=V[,V]",
                     help="method parameter (lists expand the grid)")
    run.add_argument("--data", action="append", default=[], metavar="DATASET.PARAM=V[,V]",
                     help="dataset parameter, e.g. digits.n_train=500")
    run.add_argument("--time-limit", type=float, help="seconds per cell before it is marked timed out")
    run.add_argument("--cap-fits", type=float, metavar="N",
                     help="a method's fit may take N learner fits on the cell's full train split; past it the "
                          "cell is recorded as 'over cap'")
    run.add_argument("--memory-limit", type=float, metavar="MB",
                     help="a cell's process is killed past this resident memory, and the cell recorded failed")
    run.add_argument("--jobs", type=int, default=1,
                     help="cells run in parallel on this machine (capped at its CPU cores; -1: one per core)")
    run.add_argument("--backend", choices=["local", "dask"], default="local",
                     help="local: loky processes on this machine; dask: a dask.distributed cluster")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: a local cluster)")
    run.add_argument("--out", type=Path, default=Path("reports"), help="reports root directory")
    run.add_argument("--run-id", help="run directory name (default: from the config hash)")
    run.add_argument("--extend", action="store_true",
                     help="run a grid other than the one --run-id's directory holds into it, beside it")
    run.add_argument("--retry-failed", action="store_true", help="rerun cells recorded as failed")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--no-cache", action="store_true",
                     help="retrain every metric fit (default: cache them in OUT/.cache/fits or $VALBENCH_CACHE_DIR)")
    run.add_argument("--no-scores", action="store_true",
                     help="do not keep each cell's per-point values in RUN_DIR/scores/ (for huge grids)")

    scores = sub.add_parser("scores", help="the per-point values of a run's cells as one table")
    scores.add_argument("run_dir", type=Path)
    scores.add_argument("--method", type=_csv(str), default=[], help="only these methods (comma-separated)")
    scores.add_argument("--dataset", type=_csv(str), default=[], help="only these datasets (comma-separated)")
    scores.add_argument("--out", type=Path, help="write FILE.parquet or FILE.csv (default: CSV on stdout)")

    add_select_parser(sub, _csv(str))

    summary = sub.add_parser("summary", help="print and write the summary table of a run directory")
    summary.add_argument("run_dir", type=Path)

    report = sub.add_parser("report", help="write the HTML report (index.html, figures) of a run directory")
    report.add_argument("run_dir", type=Path)
    return parser


def grid_from_args(args: argparse.Namespace) -> GridConfig:
    config = GridConfig.from_toml(args.config) if args.config else GridConfig(methods=[], datasets=[])
    for field in ("methods", "datasets", "seeds", "noise", "budgets"):
        if getattr(args, field) is not None:
            setattr(config, field, getattr(args, field))
    if args.learner:
        config.learner = {**config.learner, "name": args.learner}
    if args.time_limit is not None:
        config.time_limit = args.time_limit
    if args.cap_fits is not None:
        config.cap_fits = args.cap_fits
    if args.memory_limit is not None:
        config.memory_limit = args.memory_limit
    for text in args.set:
        owner, param, value = parse_assignment(text)
        config.method_params.setdefault(owner, {})[param] = value
    for text in args.data:
        owner, param, value = parse_assignment(text)
        config.dataset_params.setdefault(owner, {})[param] = value
    config.validate()
    return config


def run_directory(root: Path, run_id: str) -> Path:
    """``root/run_id``, with ``root/latest`` pointing at it."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    latest = root / "latest"
    tmp = root / f".latest-{os.getpid()}"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(run_id)
    os.replace(tmp, latest)  # atomic switch of the link
    return run_dir


def command_list() -> None:
    print("methods:")
    for name in sorted(METHODS):
        print(f"  {name:<24} {describe_method(METHODS[name])}")
    for family, why in sorted(UNAVAILABLE.items()):
        print(f"  ({family} unavailable: {why})")
    print("datasets:")
    for name in sorted(DATASETS):
        print(f"  {name:<24} {getattr(DATASETS[name], 'description', '')}")


def check_run_args(args: argparse.Namespace) -> None:
    """The flags a grid file cannot hold: parallelism, backend, where results go; refused before any work."""
    if args.jobs == 0 or args.jobs < -1:
        raise DataError(f"--jobs {args.jobs} is invalid: give the number of cells run in parallel (>= 1), "
                        "or -1 for one per CPU core")
    if args.scheduler and args.backend != "dask":
        raise DataError(f"--scheduler {args.scheduler} needs --backend dask")
    if args.scheduler and not SCHEDULER_ADDRESS.fullmatch(args.scheduler):
        raise DataError(f"--scheduler {args.scheduler!r} is not a scheduler address: give PROTOCOL://HOST:PORT "
                        "(e.g. tcp://10.0.0.5:8786) or HOST:PORT")
    if args.run_id is not None and (args.run_id in ("", ".", "..", "latest") or "/" in args.run_id):
        raise DataError(f"--run-id {args.run_id!r} is invalid: give a plain directory name (not 'latest')")
    existing = next(p for p in (args.out, *args.out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise DataError(f"--out {args.out}: {existing} exists and is not a directory")
    if not os.access(existing, os.W_OK):
        raise DataError(f"--out {args.out}: {existing} is not writable")
    cores = available_cores()
    if args.backend == "local" and args.jobs > cores:
        print(f"warning: --jobs {args.jobs} exceeds this machine's {cores} CPU cores; running {cores} cells at a "
              "time (a cluster takes more through --backend dask)", file=sys.stderr)
        args.jobs = cores


SCHEDULER_ADDRESS = re.compile(r"((tcp|tls|ucx|ws|wss|inproc)://)?[A-Za-z0-9_.\-\[\]:]*[A-Za-z0-9\]](:\d{1,5})?")


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and write a file there, or raise one line naming it: before any cell runs."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".valbench-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise DataError(f"{what} {folder} is not writable ({err.strerror or err})") from err


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one, e.g. in a container)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def command_run(args: argparse.Namespace) -> None:
    check_run_args(args)
    config = grid_from_args(args)
    cells = config.cells()
    if not cells:
        raise DataError(f"every cell of the grid is removed by its `exclude` rules ({config.exclude}); nothing to run")
    run_id = args.run_id or "run-" + hashlib.sha256("".join(sorted(c.key for c in cells)).encode()).hexdigest()[:10]
    try:  # the first write: a folder that cannot be made or written is a usage error, before any cell
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"--out {args.out}: cannot create or write the run directory ({err.strerror or err})") from err
    check_writable(args.out, "--out")
    cache_dir = None if args.no_cache else default_cache_dir(args.out)
    if cache_dir is not None:
        check_writable(cache_dir, "the fit cache folder (VALBENCH_CACHE_DIR; or run with --no-cache)")
    (args.out / run_id).mkdir(exist_ok=True)
    with exclusive(args.out / run_id, "run"):
        try:
            record_grid(args.out / run_id, config, args.plugin, args.extend)
            run_dir = run_directory(args.out, run_id)
        except OSError as err:
            raise DataError(f"--out {args.out}: cannot write the run directory ({err.strerror or err})") from err
        client = connect_dask(args.scheduler) if args.backend == "dask" else None
        print(f"{len(cells)} cells -> {run_dir}", file=sys.stderr)
        try:
            counts = run_grid(cells, ResultsStore(run_dir), jobs=-1 if client else args.jobs,
                              plugins=tuple(args.plugin), time_limit_s=config.time_limit,
                              retry_failed=args.retry_failed, progress=not args.no_progress,
                              backend="dask" if client else "loky", cache_dir=cache_dir,
                              cap_fits=config.cap_fits, memory_limit_mb=config.memory_limit,
                              scores=not args.no_scores)
        finally:
            if client is not None:
                client.close()
        print(f"done: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} already present",
              file=sys.stderr)
        _render_report(run_dir)


def command_scores(args: argparse.Namespace) -> None:
    """Concatenate a run's scores files (:func:`valbench.values.read_scores`) into one Parquet or CSV table."""
    from valbench.values import read_scores

    out = args.out
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise DataError(f"--out {out}: give a .parquet or .csv file name")
    frame = read_scores(args.run_dir, args.method, args.dataset)
    if out is None:
        frame.to_csv(sys.stdout, index=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    (frame.to_parquet if out.suffix.lower() == ".parquet" else frame.to_csv)(out, index=False)
    print(f"{len(frame)} rows ({frame[['dataset', 'method', 'seed', 'noise_rate', 'params']].drop_duplicates().shape[0]}"
          f" cells) -> {out}", file=sys.stderr)


def _render_report(run_dir: Path) -> None:
    """The one-screen answer and the report's path (:func:`valbench.report.publish`); a reporting failure must
    not cost the run its exit status."""
    from valbench.report import publish

    try:
        print(render_outputs(run_dir, publish))
    except Exception as err:  # noqa: BLE001 - the results are safe in the store; say how to retry
        print(f"warning: the report failed ({type(err).__name__}: {err}); "
              f"retry with: python -m valbench report {run_dir}", file=sys.stderr)


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as the CLI prints them: one line, no source excerpt."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = one_line_warning
    try:
        load_installed()
        load_plugins(args.plugin)
        if args.command == "list":
            command_list()
        elif args.command == "run":
            command_run(args)
        elif args.command == "select":
            command_select(args)
        elif args.command == "scores":
            command_scores(args)
        elif args.command in ("summary", "report"):
            check_is_run(args.run_dir)
            with exclusive(args.run_dir, args.command):
                if args.command == "summary":
                    from valbench.report.build import build_report
                    from valbench.report.markdown import write_summary

                    print(render_outputs(args.run_dir, lambda folder: write_summary(build_report(folder))))
                else:
                    from valbench.report import publish

                    print(render_outputs(args.run_dir, publish))
    except (UnknownNameError, DataError, StoreWriteError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        why = f"stopped by {err}" if isinstance(err, RunStopped) else "interrupted"
        print(f"{why}: every cell stored so far is kept; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
