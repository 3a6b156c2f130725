"""The grid on a dask.distributed cluster (two local worker processes on loopback)."""

import inspect
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("dask.distributed")

from valbench.cli import main  # noqa: E402
from valbench.runner import connect_dask  # noqa: E402

PLUGIN = str(Path(__file__).parent / "plugins" / "valbench_test_plugin.py")
# what differs between two runs of the same cell: where and when it ran, and how long it took
VOLATILE = {"started_at", "host", "wall_s", "cpu_s", "peak_rss_mb", "cell_wall_s", "cell_cpu_s", "removal_s", "fit_cache",
            "learner_fit_s", "learner_fit_cpu_s"}


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def stable(run_dir: Path) -> dict[str, dict]:
    return {r["key"]: {k: v for k, v in r.items() if k not in VOLATILE} for r in records(run_dir)}


def test_dask_results_equal_local_results_for_deterministic_methods(cluster, tmp_path):
    grid = ["run", "--methods", "knn-shapley,loo", "--datasets", "wine", "--seeds", "0", "--budgets", "0.1,0.5",
            "--no-progress", "--no-cache", "--out", str(tmp_path)]
    assert main([*grid, "--run-id", "local", "--jobs", "2"]) == 0
    assert main([*grid, "--run-id", "dask", "--backend", "dask", "--scheduler", cluster.scheduler_address]) == 0
    local, remote = stable(tmp_path / "local"), stable(tmp_path / "dask")
    assert len(local) == 2 and all(r["status"] == "ok" for r in local.values())
    assert remote == local


def test_two_hundred_cells_on_the_cluster_each_exactly_once(cluster, tmp_path):
    assert main(["--plugin", PLUGIN, "run", "--methods", "random,plugin-norm", "--datasets", "wine",
                 "--seeds", ",".join(map(str, range(100))), "--budgets", "0.5", "--no-progress",
                 "--out", str(tmp_path), "--run-id", "r", "--backend", "dask",
                 "--scheduler", cluster.scheduler_address]) == 0
    rows = records(tmp_path / "r")
    assert len(rows) == 200 and len({r["key"] for r in rows}) == 200
    assert all(r["status"] == "ok" for r in rows)
    hosts_or_pids = {r["host"] for r in rows}
    assert hosts_or_pids  # ran, recorded where


def test_an_unreachable_scheduler_is_a_clear_usage_error_quickly(tmp_path, capsys):
    """Quickly: it gives up after connect_dask's own timeout (<= 10 s; the message names it), not dask's default."""
    timeout_s = inspect.signature(connect_dask).parameters["timeout_s"].default
    assert timeout_s <= 10
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["run", "--methods", "random", "--datasets", "wine", "--no-progress", "--out", str(tmp_path),
                 "--backend", "dask", "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert code == 2
    assert (f"cannot reach the dask scheduler at 'tcp://127.0.0.1:{port}' within {timeout_s:g} s"
            in capsys.readouterr().err)


@pytest.mark.wallclock("that the worker is freed at the time limit is a matter of time: the run must end in "
                       "under half the 2 x 300 s that three 300 s sleepers on two workers would take")
def test_a_hanging_method_fails_its_own_cell_and_frees_the_worker(cluster, tmp_path):
    sleep_s, limit_s = 300, 10  # the limit leaves every quick cell (random) room under load; a sleeper none
    t0 = time.perf_counter()
    assert main(["--plugin", PLUGIN, "run", "--methods", "plugin-sleepy,random", "--datasets", "wine",
                 "--seeds", "0,1,2", "--budgets", "0.5", "--set", f"plugin-sleepy.seconds={sleep_s}",
                 "--time-limit", str(limit_s), "--no-progress", "--out", str(tmp_path), "--run-id", "r",
                 "--backend", "dask", "--scheduler", cluster.scheduler_address]) == 0
    # three sleepers on two workers take 2 x sleep_s unless each frees its worker after its limit_s
    assert time.perf_counter() - t0 < sleep_s
    rows = records(tmp_path / "r")
    assert sorted((r["method"], r["status"]) for r in rows) == [("plugin-sleepy", "timeout")] * 3 + [
        ("random", "ok")] * 3
    assert all(f"time limit of {limit_s} s exceeded" in r["error"] for r in rows if r["status"] == "timeout")


def test_a_worker_killed_mid_grid_loses_no_cell_and_runs_none_twice(cluster, tmp_path):
    """Runs last in this module: the killed worker is restarted by its nanny."""
    grid = ["--plugin", PLUGIN, "run", "--methods", "plugin-sleepy", "--datasets", "wine", "--seeds",
            ",".join(map(str, range(12))), "--budgets", "0.5", "--set", "plugin-sleepy.seconds=1",
            "--no-progress", "--out", str(tmp_path), "--run-id", "r", "--backend", "dask",
            "--scheduler", cluster.scheduler_address]
    with distributed.Client(cluster.scheduler_address) as client:
        victim = next(iter(client.run(os.getpid).values()))
    codes = []
    thread = threading.Thread(target=lambda: codes.append(main(grid)))
    thread.start()
    results, inflight = tmp_path / "r" / "results.jsonl", tmp_path / "r" / ".inflight"
    while thread.is_alive() and not (results.exists() and len(results.read_text().splitlines()) >= 2
                                     and inflight.exists() and any(inflight.iterdir())):
        time.sleep(0.05)  # until two cells landed and others are in flight (or the run ended: the test fails)
    os.kill(victim, signal.SIGKILL)  # while cells are in flight
    landed_before_kill = len(results.read_text().splitlines())
    thread.join(timeout=300)
    assert codes == [0]
    assert landed_before_kill < 12  # the worker died mid-grid
    with distributed.Client(cluster.scheduler_address) as client:
        assert victim not in client.run(os.getpid).values()  # it was killed (and its nanny started another)
    rows = records(tmp_path / "r")
    assert len(rows) == 12 and len({r["key"] for r in rows}) == 12  # each cell exactly once, none lost
    assert all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows]
