"""``valbench select FILE --label COLUMN --budget B --out DIR``: the command line of :func:`valbench.keep.select`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from valbench.keep.candidates import MAX_FITS, MEMORY_LIMIT_MB
from valbench.protocol import DataError


def add_select_parser(sub: argparse._SubParsersAction, csv_list) -> None:
    """The ``select`` subcommand and its flags (the ``table`` dataset's options among them)."""
    p = sub.add_parser("select", help="which rows of your table to keep (and which look mislabelled), measured on it")
    p.add_argument("file", type=Path, help="CSV, TSV, Parquet or NPZ table")
    p.add_argument("--label", required=True, help="the class column")
    p.add_argument("--budget", type=float, required=True, help="rows to keep: a fraction in (0, 1] or a count")
    p.add_argument("--out", type=Path, required=True, help="folder for values.csv, index.html and the work")
    p.add_argument("--id", default="", help="a column of unique row ids, carried to the output (never a feature)")
    p.add_argument("--drop", type=csv_list, default=[], help="columns to leave out (comma-separated)")
    p.add_argument("--drop-nonfinite", action="store_true", help="drop rows with NaN, inf or a missing value")
    p.add_argument("--sep", default="", help="CSV delimiter (default ',', tab for .tsv)")
    p.add_argument("--max-categories", type=int, default=50, help="most values a text column may one-hot encode")
    p.add_argument("--methods", type=csv_list, help="candidates to measure (default: those whose cost fits the size)")
    p.add_argument("--max-fits", type=float, default=MAX_FITS,
                   help=f"default candidates: predicted cost at most this many learner fits (default {MAX_FITS:g})")
    p.add_argument("--seeds", type=int, default=3, help="stratified splits measured (>= 3)")
    p.add_argument("--check-detection", action="store_true",
                   help="also flip labels at the estimated noise rate and rank the label-error detectors")
    p.add_argument("--memory-limit", type=float, default=MEMORY_LIMIT_MB, metavar="MB",
                   help=f"a measured cell past this resident memory fails alone (default {MEMORY_LIMIT_MB:g}; 0: none)")
    p.add_argument("--jobs", type=int, default=1, help="cells measured in parallel on this machine")
    p.add_argument("--backend", choices=["local", "dask"], default="local")
    p.add_argument("--scheduler", metavar="ADDRESS", help="dask scheduler address (default: a local cluster)")
    p.add_argument("--no-progress", action="store_true")


def command_select(args: argparse.Namespace) -> None:
    """Read the table, refuse bad flags in one line, run the selection, print the recommendation and paths."""
    from valbench.datasets.table import read_table
    from valbench.keep.api import select

    if args.memory_limit < 0:
        raise DataError(f"--memory-limit {args.memory_limit:g} is invalid: give megabytes (> 0), or 0 for no limit")
    if args.jobs < 1:
        raise DataError(f"--jobs {args.jobs} is invalid: give the number of cells measured in parallel (>= 1)")
    if args.scheduler and args.backend != "dask":
        raise DataError(f"--scheduler {args.scheduler} needs --backend dask")
    if args.out.exists() and not args.out.is_dir():
        raise DataError(f"--out {args.out} exists and is not a folder")
    x, y, ids, _ = read_table(str(args.file), args.label, "+".join(args.drop), args.sep, args.drop_nonfinite,
                              args.max_categories, args.id)
    selection = select(x, y, args.budget, ids=ids, id_name=args.id or "row", methods=args.methods,
                       seeds=args.seeds, check_detection=args.check_detection, out=args.out, jobs=args.jobs,
                       backend=args.backend, scheduler=args.scheduler, max_fits=args.max_fits,
                       memory_limit_mb=args.memory_limit or None,
                       progress=not args.no_progress)
    print(f"label noise: {selection.noise.sentence()}")
    print(f"recommendation: {selection.sentence}")
    print(f"label issues: {selection.detection_rule}")
    for name, path in selection.paths.items():
        print(f"{name}: {path}")
    sys.stdout.flush()
