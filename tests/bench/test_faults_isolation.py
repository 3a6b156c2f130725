"""Hostile methods end their own cell only, at --jobs 1 as at --jobs 2; what was stored before stays, byte for byte.

Each run goes through ``valbench.cli.main`` in this process (its workers are forks of it), with the report
rendering replaced by a stub: the report has its own tests, and it is what would make these slow.
"""

import json
import os
import re
from pathlib import Path

import pytest

import valbench.cli as cli
from tests.bench.test_faults_inputs import stub_outputs
import valbench.runner as runner
from valbench.grid import GridConfig
from valbench.registry import load_installed, load_plugins

PLUGIN = str(Path(__file__).parent / "plugins" / "valbench_hostile_plugin.py")
load_installed()
load_plugins([PLUGIN])

# act -> (status, a piece of the recorded error)
EXPECTED = {
    "exit": ("failed", "raised SystemExit: 3; its process was ended"),
    "os-exit": ("failed", "its process died while running this cell (exit status 7, twice)"),
    "segfault": ("failed", "its process died while running this cell (killed by signal 11 (SIGSEGV), twice)"),
    "keyboard": ("failed", "raised KeyboardInterrupt"),
    "hog": ("failed", "memory limit of"),
    "sigprof": ("over cap", "over cap: the fit ran past 2 learner fits"),  # or timeout on a starved machine
    "chatty": ("ok", None),
}


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def own_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_hostile_method_fails_its_own_cell_only(jobs, tmp_path, monkeypatch, capsys):
    stub_outputs(monkeypatch)
    earlier = set(_children())  # processes earlier tests left (a dask cluster's nannies), not this run's
    monkeypatch.setattr(runner, "CAP_FLOOR_S", 2.0)  # the forked workers inherit it
    common = ["--datasets", "wine", "--budgets", "0.5", "--out", str(tmp_path), "--run-id", "r", "--no-progress",
              "--jobs", str(jobs), "--no-cache"]
    assert cli.main(["--plugin", PLUGIN, "run", "--methods", "random", "--seeds", "0,1", *common]) == 0
    before = (tmp_path / "r" / "results.jsonl").read_bytes()
    acts = ",".join(EXPECTED)
    argv = ["--plugin", PLUGIN, "run", "--methods", "random,plugin-hostile", "--seeds", "0,1", "--set", f"plugin-hostile.act={acts}",
            "--time-limit", "300", "--cap-fits", "2", "--memory-limit", f"{own_rss_mb() + 400:.0f}", "--extend",
            *common]
    capsys.readouterr()
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    n_bad = sum(status != "ok" for status, _ in EXPECTED.values()) * 2
    assert f"done: {2 * len(EXPECTED) - n_bad} ok, {n_bad} failed, 2 already present" in err
    assert "Traceback" not in err
    after = (tmp_path / "r" / "results.jsonl").read_bytes()
    assert after.startswith(before)  # the two random cells stored first: untouched, not recomputed
    rows = records(tmp_path / "r")
    assert len(rows) == 2 + 2 * len(EXPECTED) and len({r["key"] for r in rows}) == len(rows)
    for row in rows[2:]:
        status, error = EXPECTED[row["method_params"]["act"]]
        if row["method_params"]["act"] == "sigprof" and row["status"] == "timeout":
            continue  # which outside limit fires first depends on the CPU share the machine gives it: both kill
        assert row["status"] == status, (row["method_params"], row.get("error"))
        assert error is None or error in row["error"], row["error"]
    assert set(_children()) <= earlier  # every worker of this run was reaped


def test_a_method_deaf_to_every_signal_is_killed_at_its_deadline():
    earlier = set(_children())  # processes earlier tests left (a dask cluster's nannies), not this run's
    cell, = GridConfig(methods=["plugin-hostile"], datasets=["wine"], budgets=[0.5],
                       method_params={"plugin-hostile": {"act": "deaf-sleep"}}).cells()
    record = runner.run_cell(cell, (PLUGIN,), time_limit_s=3)
    assert record["status"] == "timeout" and "time limit of 3 s exceeded (its process was killed)" in record["error"]
    assert set(_children()) <= earlier


def test_a_method_with_its_own_sigprof_handler_is_still_over_cap(monkeypatch):
    """The CPU cap is read from outside (/proc), so a method that ignores SIGPROF cannot escape it."""
    monkeypatch.setattr(runner, "CAP_FLOOR_S", 0.5)
    cell, = GridConfig(methods=["plugin-hostile"], datasets=["wine"], budgets=[0.5],
                       method_params={"plugin-hostile": {"act": "sigprof"}}).cells()
    record = runner.run_cell(cell, (PLUGIN,), time_limit_s=600, cap_fits=2)
    assert record["status"] == "over cap" and "learner fits" in record["error"]
    assert record["cap_cpu_s"] == 0.5 and record["cell_cpu_s"] >= 0.5


def _children() -> list[int]:
    """Processes whose parent is this one (its workers, if any were left)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me and not stat.rsplit(")", 1)[1].split()[0] == "Z":
                found.append(int(entry))
    return found


def test_a_method_that_changes_signal_handlers_does_not_change_the_next_cell(tmp_path, monkeypatch, capsys):
    """A worker that ran a cell restores the signal handlers and timers it started with before the next one."""
    import signal

    from valbench.isolate import _restore, _signal_handlers

    handlers = _signal_handlers()
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_PROF, 100)
    try:
        _restore(handlers)
        assert signal.getsignal(signal.SIGUSR1) is previous
        assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_heavy_output_from_a_method_loses_nothing(tmp_path, monkeypatch, capfd):
    stub_outputs(monkeypatch)
    argv = ["--plugin", PLUGIN, "run", "--methods", "plugin-hostile", "--set", "plugin-hostile.act=chatty",
            "--set", "plugin-hostile.lines=50000", "--datasets", "wine", "--budgets", "0.5", "--seeds", "0,1,2",
            "--jobs", "2", "--out", str(tmp_path), "--run-id", "r", "--no-progress", "--no-cache"]
    assert cli.main(argv) == 0
    out = capfd.readouterr().out
    assert len(re.findall(r"stdout line \d+", out)) == 3 * 50000
    assert [r["status"] for r in records(tmp_path / "r")] == ["ok"] * 3
