"""Cells in a forked child: what dask worker threads do so that time limits hold (bench.isolate, runner)."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

import valbench.runner as runner
from valbench.grid import GridConfig
from valbench.isolate import ChildDied, ChildTimeout, call_in_child
from valbench.registry import load_installed, load_plugins

PLUGIN = str(Path(__file__).parent / "plugins" / "valbench_test_plugin.py")
load_installed()
load_plugins([PLUGIN])


HANG_S = 120  # far beyond the limits tested (1 s): a child still sleeping when its call returned was cut short


def hang(pid_file):
    Path(pid_file).write_text(str(os.getpid()))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(HANG_S)
    Path(pid_file).write_text("finished")


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def fail():
    raise ValueError("bad input")


def test_results_come_back_whatever_their_size():
    assert call_in_child(divmod, (17, 5), deadline_s=30) == (3, 2)
    assert len(call_in_child(bytes, (5_000_000,), deadline_s=30)) == 5_000_000  # > the pipe's buffer


def test_a_stuck_child_is_killed_at_the_deadline(tmp_path):
    """No clock: the child sleeps HANG_S, so the timeout (not a result) means it was stopped mid-sleep; it is
    gone (killed and reaped) when the call returns, and never reached the end of its sleep."""
    pid_file = tmp_path / "pid"
    with pytest.raises(ChildTimeout, match="no result within 1 s"):
        call_in_child(hang, (str(pid_file),), deadline_s=1)
    pid = int(pid_file.read_text())  # not "finished"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_child_that_dies_or_raises_is_reported():
    with pytest.raises(ChildDied, match="signal 9"):
        call_in_child(die, (), deadline_s=30)
    with pytest.raises(RuntimeError, match="ValueError: bad input"):
        call_in_child(fail, (), deadline_s=30)


def in_a_thread(method, params, time_limit_s):
    """run_cell as a dask worker calls it: from a thread that is not the main one."""
    cell = GridConfig(methods=[method], datasets=["wine"], budgets=[0.5],
                      method_params={method: params}).cells()[0]
    out = {}
    thread = threading.Thread(target=lambda: out.update(runner.run_cell(cell, (PLUGIN,), time_limit_s)))
    thread.start()
    thread.join()
    return out


@pytest.mark.wallclock("the time limit itself is under test: each cell must end long before its method's "
                       "HANG_S sleep would (a bound of HANG_S / 2 for two cells at a 1 s limit), which no count can show")
def test_a_cell_in_a_thread_keeps_its_time_limit(monkeypatch):
    t0 = time.perf_counter()
    record = in_a_thread("plugin-sleepy", {"seconds": HANG_S}, 1)  # killed by the parent at its deadline
    assert record["status"] == "timeout" and "time limit of 1 s exceeded" in record["error"]
    record = in_a_thread("plugin-stuck", {"seconds": HANG_S}, 1)  # deaf to SIGALRM: killed by the parent
    assert record["status"] == "timeout" and "its process was killed" in record["error"]
    assert time.perf_counter() - t0 < HANG_S / 2  # both together, against a sleep of HANG_S each
    assert in_a_thread("plugin-sleepy", {"seconds": 0.0}, 5)["status"] == "ok"


def test_a_cell_whose_process_dies_is_rerun_once(tmp_path):
    once = in_a_thread("plugin-killer", {"marker": str(tmp_path / "once")}, 30)
    assert (tmp_path / "once").exists() and once["status"] == "ok"
    always = in_a_thread("plugin-killer", {"marker": str(tmp_path / "always"), "always": 1}, 30)
    assert always["status"] == "failed" and "died while running this cell (killed by signal 9 (SIGKILL), twice)" in always["error"]
