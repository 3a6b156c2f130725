"""The runtime-regression gate: benchmark times as ratios to a calibration workload, compared with a baseline.

A wall-clock time means little on its own on a shared machine, so every benchmark is normalised by a fixed
calibration workload (``CALIBRATION_FITS`` logistic-regression fits on fixed data) timed in the same
process, interleaved round by round with the benchmark itself, so both see the same load:

    ratio = median over rounds r of  t_benchmark(r) / t_calibration(r)

where t_calibration(r) is the calibration run just before round r: pairing cancels the load that both
see (on a shared machine a core's speed flips between modes for seconds at a time), and the median drops
the rounds where a burst hit only one of the pair.

Times are the process's CPU time (``time.process_time``), not wall-clock: on a shared machine another
process's load stretches wall time by 2x and more, CPU time much less (cache, memory and hyper-thread
contention remain, which is what the median of paired ratios is for). The price: a slowdown that waits
rather than computes (sleep, I/O, work handed to child processes) is not seen; every native method
computes in-process. Measured on 2 shared cores at a load average of 5-8: the run-to-run spread
(max / min) of a ratio is 1.03-1.2x for most benchmarks and up to 1.4x for the memory-bound knn-shapley,
against up to 1.55x (CPU time) and 2.3x (wall time) for min / min.

The gate compares each ratio with the committed baseline (``perf/baseline.json``, the median of 3 runs):

    slowdown = current ratio / baseline ratio;   REGRESSED when slowdown > tolerance (default 1.5)

A benchmark in the baseline but not measured now is MISSING (a failure: coverage was lost); one measured
now but not in the baseline is NEW (a warning). A regression is confirmed by re-measuring the regressed
benchmarks (``--confirm`` reruns, best ratio kept): noise does not repeat, a real slowdown does.

Commands (the Makefile's ``bench-ci`` and ``bench-baseline`` call the first two)::

    python -m valbench.perfgate check    [--tolerance 1.5] [--baseline perf/baseline.json] [--confirm 1]
    python -m valbench.perfgate baseline [--baseline perf/baseline.json] [--repeat 3]
    python -m valbench.perfgate compare  CURRENT.json [--baseline perf/baseline.json] [--tolerance 1.5]

``check`` and ``baseline`` run the pytest-benchmark suite ``tests/perf`` (skipped in ``make test``; it runs
when ``VALBENCH_PERF=1``) and read its ``--benchmark-json`` output; ``compare`` compares an existing one.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

DEFAULT_TOLERANCE = 1.5
DEFAULT_BASELINE = "perf/baseline.json"
DEFAULT_OUT = "reports/perf"
PERF_SUITE = "tests/perf/test_benchmarks.py"
STATISTIC = "median of per-round ratios to the calibration run just before each round"
TIMER = time.process_time  # see the module docstring: CPU time of this process, all its threads
TIMER_NAME = "process_time"
SCHEMA = 1

CALIBRATION_FITS = 4
CALIBRATION_SHAPE = (512, 16, 4)  # rows, features, classes
CALIBRATION = (f"{CALIBRATION_FITS} logreg fits (L-BFGS, max_iter 100) on fixed data "
               f"{CALIBRATION_SHAPE[0]}x{CALIBRATION_SHAPE[1]}, {CALIBRATION_SHAPE[2]} classes")


# --------------------------------------------------------------------------------------------- measuring

def calibration_workload(fits: int = CALIBRATION_FITS, shape: tuple[int, int, int] = CALIBRATION_SHAPE
                         ) -> Callable[[], None]:
    """The calibration: ``fits`` logistic-regression fits on fixed, overlapping Gaussian classes.

    Overlapping classes keep L-BFGS busy for a fixed number of iterations (separable data would run to
    ``max_iter`` with a growing norm, a less stable amount of work).
    """
    from valbench.learners import LogisticRegression

    n, d, k = shape
    rng = np.random.default_rng(12345)
    y = np.arange(n) % k
    x = (rng.normal(size=(k, d))[y] + 1.5 * rng.normal(size=(n, d))).astype(np.float32)
    learner = LogisticRegression(d, k, seed=0)

    def run() -> None:
        for _ in range(fits):
            learner.fit(x, y)

    return run


@dataclass
class Timing:
    """Times (s) of ``rounds`` calls of a benchmark and of the calibration interleaved with them."""

    times: list[float]
    calibration_times: list[float]

    @property
    def min_s(self) -> float:
        return min(self.times)

    @property
    def calibration_min_s(self) -> float:
        return min(self.calibration_times)

    @property
    def ratio(self) -> float:
        return paired_ratio(self.times, self.calibration_times)


def paired_ratio(times: Sequence[float], calibration_times: Sequence[float]) -> float:
    """Median over rounds of time / calibration time, pairing each round with the calibration just before it.

    ``calibration_times`` may be longer (warm-up rounds first): its last ``len(times)`` entries pair up.
    """
    if not times or len(calibration_times) < len(times):
        raise ValueError(f"need a calibration time per round: {len(times)} rounds, "
                         f"{len(calibration_times)} calibration times")
    cal = calibration_times[len(calibration_times) - len(times):]
    return statistics.median(t / c for t, c in zip(times, cal))


def timed(fn: Callable[[], Any]) -> float:
    t0 = TIMER()
    fn()
    return TIMER() - t0


def measure(fn: Callable[[], Any], rounds: int = 7, warmup: int = 1,
            calibration: Callable[[], Any] | None = None) -> Timing:
    """Time ``fn`` and the calibration alternately, ``rounds`` times each after ``warmup`` untimed pairs."""
    calibration = calibration or calibration_workload()
    for _ in range(warmup):
        calibration()
        fn()
    times, cal = [], []
    for _ in range(rounds):
        cal.append(timed(calibration))
        times.append(timed(fn))
    return Timing(times, cal)


# --------------------------------------------------------------------------------------------- results

def ratios_from_pytest_json(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{workload: {ratio, min_s, calibration_min_s, rounds, describe}}`` from a ``--benchmark-json`` file.

    Each benchmark of ``tests/perf`` records its workload name and the calibration's times in ``extra_info``;
    its own per-round times are pytest-benchmark's ``stats.data``.
    """
    data = json.loads(pathlib.Path(path).read_text())
    out: dict[str, dict[str, Any]] = {}
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info", {})
        if "workload" not in info or "calibration_times" not in info:
            continue
        timer = bench.get("options", {}).get("timer", TIMER_NAME)
        if not str(timer).endswith(TIMER_NAME):
            raise ValueError(f"{path}: benchmark {bench.get('name')} was timed with {timer!r} but its calibration "
                             f"with {TIMER_NAME!r}; run the perf suite with --benchmark-timer=time.{TIMER_NAME} "
                             f"(python -m valbench.perfgate does)")
        times, cal = bench["stats"]["data"], info["calibration_times"]
        out[info["workload"]] = {"ratio": paired_ratio(times, cal), "min_s": min(times),
                                 "calibration_min_s": min(cal), "rounds": len(times),
                                 "describe": info.get("describe", "")}
    return out


def read_baseline(path: str | os.PathLike) -> dict[str, Any]:
    data = json.loads(pathlib.Path(path).read_text())
    if data.get("schema") != SCHEMA or "benchmarks" not in data:
        raise ValueError(f"{path}: not a perf baseline (schema {SCHEMA}); rewrite it with `make bench-baseline`")
    return data


def baseline_document(runs: Sequence[Mapping[str, Mapping[str, Any]]], note: str = "") -> dict[str, Any]:
    """The baseline file's content: per workload, the median over ``runs`` of the ratio (and its spread)."""
    names = sorted(set().union(*runs)) if runs else []
    benchmarks = {}
    for name in names:
        seen = [run[name] for run in runs if name in run]
        ratios = [r["ratio"] for r in seen]
        benchmarks[name] = {"ratio": round(statistics.median(ratios), 6),
                            "ratio_runs": [round(r, 6) for r in ratios],
                            "min_s": round(statistics.median(r["min_s"] for r in seen), 6),
                            "describe": seen[0].get("describe", "")}
    cal = [r["calibration_min_s"] for run in runs for r in run.values()]
    return {"schema": SCHEMA, "statistic": f"{STATISTIC} ({TIMER_NAME}); median over runs",
            "calibration": CALIBRATION, "calibration_min_s": round(min(cal), 6) if cal else None,
            "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "runs": len(runs), "note": note, "benchmarks": benchmarks}


# --------------------------------------------------------------------------------------------- comparing

@dataclass
class Row:
    name: str
    baseline: float | None
    current: float | None
    status: str  # ok | REGRESSED | faster | NEW | MISSING

    @property
    def slowdown(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current / self.baseline


@dataclass
class Comparison:
    rows: list[Row]
    tolerance: float
    allow_missing: bool = False
    notes: list[str] = field(default_factory=list)

    def named(self, status: str) -> list[str]:
        return [r.name for r in self.rows if r.status == status]

    @property
    def regressed(self) -> list[str]:
        return self.named("REGRESSED")

    @property
    def missing(self) -> list[str]:
        return self.named("MISSING")

    @property
    def new(self) -> list[str]:
        return self.named("NEW")

    @property
    def failed(self) -> bool:
        return bool(self.regressed) or (bool(self.missing) and not self.allow_missing)

    def table(self) -> str:
        head = f"{'benchmark':<16} {'baseline ratio':>14} {'current ratio':>14} {'slowdown':>9}  status"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            def num(v: float | None, fmt: str) -> str:
                return "-" if v is None else format(v, fmt)
            lines.append(f"{r.name:<16} {num(r.baseline, '.4g'):>14} {num(r.current, '.4g'):>14} "
                         f"{num(r.slowdown, '.2f') + ('x' if r.slowdown is not None else ''):>9}  {r.status}")
        return "\n".join(lines)

    def summary(self) -> str:
        parts = [self.table(), ""]
        parts += self.notes
        if self.regressed:
            parts.append(f"FAIL: slower than the baseline by more than {self.tolerance:g}x: "
                         f"{', '.join(self.regressed)}")
        if self.missing:
            verdict = "warning" if self.allow_missing else "FAIL"
            parts.append(f"{verdict}: in the baseline but not measured now (method no longer registered, or its "
                         f"benchmark was skipped or failed): {', '.join(self.missing)}")
        if self.new:
            parts.append(f"warning: measured now but not in the baseline (not gated until the baseline is "
                         f"rewritten with `make bench-baseline`): {', '.join(self.new)}")
        faster = self.named("faster")
        if faster:
            parts.append(f"note: faster than the baseline by more than {self.tolerance:g}x: {', '.join(faster)}; "
                         f"`make bench-baseline` tightens the gate")
        if not self.failed:
            parts.append(f"PASS: no benchmark slower than its baseline by more than {self.tolerance:g}x")
        return "\n".join(parts)


def compare(baseline: Mapping[str, float], current: Mapping[str, float], tolerance: float = DEFAULT_TOLERANCE,
            allow_missing: bool = False) -> Comparison:
    """Compare ratios by name: REGRESSED above ``tolerance`` x baseline, ``faster`` below baseline / tolerance."""
    if tolerance < 1:
        raise ValueError(f"tolerance must be >= 1 (a slowdown factor), got {tolerance}")
    rows = []
    for name in sorted(set(baseline) | set(current)):
        b, c = baseline.get(name), current.get(name)
        if b is None:
            status = "NEW"
        elif c is None:
            status = "MISSING"
        elif c > tolerance * b:
            status = "REGRESSED"
        elif c * tolerance < b:
            status = "faster"
        else:
            status = "ok"
        rows.append(Row(name, b, c, status))
    return Comparison(rows, tolerance, allow_missing)


def best_of(runs: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per workload, the run with the lowest ratio: confirmation reruns can only clear noise, never add it."""
    best: dict[str, dict[str, Any]] = {}
    for run in runs:
        for name, entry in run.items():
            if name not in best or entry["ratio"] < best[name]["ratio"]:
                best[name] = dict(entry)
    return best


def gate(baseline: Mapping[str, float], measure_ratios: Callable[[list[str] | None], Mapping[str, float]],
         tolerance: float = DEFAULT_TOLERANCE, confirm: int = 1, allow_missing: bool = False) -> Comparison:
    """Measure (all workloads), compare, and re-measure only the regressed ones up to ``confirm`` times.

    ``measure_ratios(names)`` returns ``{name: ratio}`` for ``names`` (None: every workload).
    """
    current = dict(measure_ratios(None))
    result = compare(baseline, current, tolerance, allow_missing)
    for attempt in range(confirm):
        if not result.regressed:
            break
        again = measure_ratios(result.regressed)
        for name, ratio in again.items():
            current[name] = min(current.get(name, ratio), ratio)
        result = compare(baseline, current, tolerance, allow_missing)
        result.notes.append(f"re-measured after a regression (rerun {attempt + 1} of at most {confirm}); "
                            f"best ratio kept")
    return result


# --------------------------------------------------------------------------------------------- the perf suite

def run_suite(out: pathlib.Path, names: list[str] | None = None, tag: str = "run",
              extra: Sequence[str] = ()) -> tuple[dict[str, dict[str, Any]], int]:
    """Run ``tests/perf`` (only the workloads ``names`` if given) under pytest; its ratios and exit code."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{tag}.json"
    path.unlink(missing_ok=True)
    targets = [f"{PERF_SUITE}::test_workload[{n}]" for n in names] if names else [PERF_SUITE]
    cmd = [sys.executable, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider", f"--benchmark-json={path}",
           f"--benchmark-timer=time.{TIMER_NAME}",
           "--benchmark-columns=min,median,max,rounds", "--benchmark-sort=name", *extra]
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, env={**os.environ, "VALBENCH_PERF": "1"})
    if not path.exists():
        return {}, proc.returncode or 1
    return ratios_from_pytest_json(path), proc.returncode


def _check(args: argparse.Namespace) -> int:
    base = read_baseline(args.baseline)
    baseline = {name: entry["ratio"] for name, entry in base["benchmarks"].items()}
    out = pathlib.Path(args.out)
    codes: list[int] = []
    runs: list[dict[str, dict[str, Any]]] = []

    def measure_ratios(names: list[str] | None) -> dict[str, float]:
        ratios, code = run_suite(out, names, tag=f"current-{len(runs)}")
        runs.append(ratios)
        codes.append(code)
        return {n: e["ratio"] for n, e in ratios.items()}

    result = gate(baseline, measure_ratios, args.tolerance, args.confirm, args.allow_missing)
    calibration = [e["calibration_min_s"] for e in runs[0].values()] if runs else []
    if calibration and base.get("calibration_min_s"):
        result.notes.append(f"calibration ({base.get('calibration', CALIBRATION)}): {min(calibration):.4f} s now, "
                            f"{base['calibration_min_s']:.4f} s when the baseline was made ({base.get('created')})")
    (out / "current.json").write_text(json.dumps(best_of(runs), indent=1, sort_keys=True) + "\n")
    print()
    print(result.summary())
    if codes and codes[0] not in (0,):
        print(f"FAIL: the perf suite itself exited with {codes[0]} (a benchmark raised or was not collected)")
        return 1
    return 1 if result.failed else 0


def _baseline(args: argparse.Namespace) -> int:
    out = pathlib.Path(args.out)
    runs = []
    for i in range(args.repeat):
        ratios, code = run_suite(out, tag=f"baseline-{i}")
        if code != 0:
            print(f"FAIL: the perf suite exited with {code}; baseline not written")
            return 1
        runs.append(ratios)
    doc = baseline_document(runs, note=args.note)
    path = pathlib.Path(args.baseline)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {path}: {len(doc['benchmarks'])} benchmarks, median of {args.repeat} run(s)")
    for name, entry in doc["benchmarks"].items():
        spread = max(entry["ratio_runs"]) / min(entry["ratio_runs"])
        print(f"  {name:<16} ratio {entry['ratio']:.4g}  (runs {', '.join(f'{r:.4g}' for r in entry['ratio_runs'])}; "
              f"max/min {spread:.2f})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    base = read_baseline(args.baseline)
    current = ratios_from_pytest_json(args.current)
    result = compare({n: e["ratio"] for n, e in base["benchmarks"].items()},
                     {n: e["ratio"] for n, e in current.items()}, args.tolerance, args.allow_missing)
    print(result.summary())
    return 1 if result.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m valbench.perfgate", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--baseline", default=DEFAULT_BASELINE, help="baseline file (default %(default)s)")

    def gating(p: argparse.ArgumentParser) -> None:
        p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                       help="fail when current ratio > tolerance x baseline ratio (default %(default)s)")
        p.add_argument("--allow-missing", action="store_true",
                       help="only warn about baseline benchmarks that were not measured")

    p = sub.add_parser("check", help="run the perf suite and compare with the baseline")
    common(p), gating(p)
    p.add_argument("--confirm", type=int, default=1, help="reruns of regressed benchmarks (default %(default)s)")
    p.add_argument("--out", default=DEFAULT_OUT, help="where the benchmark JSON goes (default %(default)s)")
    p.set_defaults(func=_check)

    p = sub.add_parser("baseline", help="run the perf suite and rewrite the baseline")
    common(p)
    p.add_argument("--repeat", type=int, default=3, help="suite runs; the baseline is their median (default 3)")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--note", default="", help="recorded in the baseline (why it was rewritten)")
    p.set_defaults(func=_baseline)

    p = sub.add_parser("compare", help="compare an existing --benchmark-json file with the baseline")
    common(p), gating(p)
    p.add_argument("current", help="a pytest-benchmark JSON file written by the tests/perf suite")
    p.set_defaults(func=_compare)

    args = parser.parse_args(argv)
    if getattr(args, "tolerance", DEFAULT_TOLERANCE) < 1:
        parser.error(f"--tolerance must be >= 1, got {args.tolerance}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
