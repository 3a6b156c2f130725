"""Cost of the scale-sensitive methods at Fashion-MNIST's shape, before and after the scale fixes (issue 17).

Each (method, N) runs in a fresh process (so its peak resident memory is its own): the ``synthetic`` set
with Fashion-MNIST's shape (784 features, 10 classes; 1,000 valid and test points), the real grid's budgets
(1, 5, 10, 30 %), logistic regression, one thread. Recorded: CPU and wall seconds of the method's ``fit``,
its peak RSS (MiB, sampled by :func:`valbench.measure.measure`, data included), and the same for one
learner fit on the whole train split, so that the ratio fit / learner fit is the cost in learner fits
(the real grid's cap is 60 of them). The code measured is whichever ``valbench`` the interpreter imports:
run it with the main checkout's environment for "before" and this branch's for "after"::

    python benchmarks/scale_fixes.py --label after --out benchmarks/results/scale_fixes.json
    python benchmarks/scale_fixes.py --table benchmarks/results/scale_fixes.json > benchmarks/results/scale_fixes.md
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

BUDGETS = (0.01, 0.05, 0.1, 0.3)
SHAPE = {"dim": 784, "n_classes": 10, "n_valid": 1000, "n_test": 1000}


class CpuLimit(Exception):
    """The fit used its CPU seconds."""


@contextmanager
def cpu_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`CpuLimit` once the block has used ``seconds`` of this process's CPU time (RLIMIT_CPU's
    SIGXCPU; this script runs each fit in a process of its own)."""
    def expire(signum: int, frame: object) -> None:
        raise CpuLimit

    previous = signal.signal(signal.SIGXCPU, expire)
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (int(time.process_time() + seconds) + 1, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        signal.signal(signal.SIGXCPU, previous)


def one(method: str, n: int, cap_s: float) -> dict:
    """Fit ``method`` once at ``n`` train points in this process; the learner fit first (data loaded once)."""
    import torch

    torch.set_num_threads(1)
    from valbench.learners import make_learner
    from valbench.measure import measure
    from valbench.metrics import budget_sizes
    from valbench.registry import get_dataset, get_method, load_installed
    unit = "CPU s"  # the machine is shared: CPU seconds, not wall seconds
    load_installed()
    data = get_dataset("synthetic")(seed=0, n_train=n, **SHAPE)
    cls = get_method(method)
    kwargs = {"budgets": budget_sizes(BUDGETS, n, data.name)} if cls.selects_sets else {}
    _, learner_cost = measure(lambda: make_learner("logreg", data.n_features, data.n_classes).fit(data.x_train,
                                                                                                  data.y_train))
    row = {"method": method, "n_train": n, "learner_cpu_s": learner_cost.cpu_s, "learner_wall_s": learner_cost.wall_s}
    learner = make_learner("logreg", data.n_features, data.n_classes)
    try:
        with cpu_limit(cap_s):
            _, cost = measure(lambda: cls().fit(data, learner, 0, **kwargs))
        row.update(status="ok", cpu_s=cost.cpu_s, wall_s=cost.wall_s, peak_rss_mb=cost.peak_rss_mb,
                   fits=cost.cpu_s / learner_cost.cpu_s)
    except CpuLimit:
        row.update(status=f"over {cap_s:g} {unit}", cpu_s=None, wall_s=None, peak_rss_mb=None, fits=None)
    return row


def table(path: Path) -> str:
    rows = json.loads(path.read_text())
    lines = ["| method | N | code | fit CPU s | fit wall s | learner fits (CPU) | peak RSS MiB |",
             "|:--|--:|:--|--:|--:|--:|--:|"]
    for r in sorted(rows, key=lambda r: (r["method"], r["n_train"], r["label"])):
        num = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        lines.append(f"| {r['method']} | {r['n_train']} | {r['label']} | {num(r['cpu_s'], '.1f')} | "
                     f"{num(r['wall_s'], '.1f')} | {num(r['fits'], '.1f')} | {num(r['peak_rss_mb'], '.0f')} |"
                     + ("" if r["status"] == "ok" else f" {r['status']}"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="kcenter,glister,facility-location,craig,gradmatch,influence,knn-shapley")
    parser.add_argument("--sizes", default="5000,20000")
    parser.add_argument("--cap", type=float, default=600.0,
                        help="CPU seconds per fit before it is abandoned (wall seconds on code without a CPU limit)")
    parser.add_argument("--label", default="after", help="which code this is (before / after)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale_fixes.json"))
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--table", type=Path, help="print the markdown table of a results file and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.cap)))
        return 0
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    for method in args.methods.split(","):
        for n in map(int, args.sizes.split(",")):
            started = time.perf_counter()
            done = subprocess.run([sys.executable, __file__, "--one", method, str(n), "--cap", str(args.cap)],
                                  capture_output=True, text=True)
            if done.returncode:
                row = {"method": method, "n_train": n, "status": f"crashed: {done.stderr.strip()[-300:]}",
                       "cpu_s": None, "wall_s": None, "peak_rss_mb": None, "fits": None}
            else:
                row = json.loads(done.stdout.strip().splitlines()[-1])
            row.update(label=args.label, elapsed_s=time.perf_counter() - started)
            rows = [r for r in rows if (r["method"], r["n_train"], r["label"]) != (method, n, args.label)] + [row]
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(rows, indent=1))
            print(json.dumps(row), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
