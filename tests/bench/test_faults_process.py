"""The run as a process: Ctrl-C, SIGTERM and kill -9 of the parent, a second run on the same directory, a full disk.

Each asserts the exit code, the one line said, that no worker outlives the run, and that every record stored
before the fault is still there, byte for byte, and is not computed again when the run resumes.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import valbench.cli as cli
from tests.bench.test_faults_inputs import stub_outputs
from valbench.registry import load_installed, load_plugins
from valbench.store import ResultsStore

PLUGIN = str(Path(__file__).parent / "plugins" / "valbench_test_plugin.py")
load_installed()
load_plugins([PLUGIN])
SEEDS = 10


def grid(out: Path, *extra: str) -> list[str]:
    return ["--plugin", PLUGIN, "run", "--methods", "plugin-sleepy", "--set", "plugin-sleepy.seconds=1",
            "--datasets", "wine", "--budgets", "0.5", "--seeds", ",".join(map(str, range(SEEDS))), "--jobs", "2",
            "--out", str(out), "--run-id", "r", "--no-progress", "--no-cache", *extra]


def start(out: Path) -> subprocess.Popen:
    """The run in a process of its own, stopped once two cells are stored (polling, no fixed sleep)."""
    proc = subprocess.Popen([sys.executable, "-m", "valbench", *grid(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    results = out / "r" / "results.jsonl"
    for _ in range(6000):
        if results.exists() and results.read_text().count("\n") >= 2:
            return proc
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the run stored no two cells")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def gone(pids: list[int]) -> bool:
    for _ in range(600):  # a bounded poll: the kernel kills them when their parent dies
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def resume(out: Path, stored: bytes, monkeypatch, capsys) -> str:
    """Rerun the same command to the end: the stored prefix is untouched and every cell is there once."""
    stub_outputs(monkeypatch)
    assert cli.main(grid(out)) == 0
    after = (out / "r" / "results.jsonl").read_bytes()
    assert after.startswith(stored)
    keys = [r["key"] for r in ResultsStore(out / "r")._lines()]
    assert len(keys) == SEEDS and len(set(keys)) == SEEDS
    return capsys.readouterr().err


@pytest.mark.parametrize("signum, said", [(signal.SIGINT, "interrupted: every cell stored so far is kept"),
                                          (signal.SIGTERM, "stopped by SIGTERM: every cell stored so far is kept")])
def test_a_stopped_run_exits_at_once_keeping_what_it_stored(signum, said, tmp_path, monkeypatch, capsys):
    proc = start(tmp_path)
    workers = children(proc.pid)
    assert workers
    # a second run, and a report, on the directory while the first one holds it: refused, naming the holder
    for argv in (grid(tmp_path), ["report", str(tmp_path / "r")]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"is in use by valbench run (pid {proc.pid} on " in err, err
    stored = (tmp_path / "r" / "results.jsonl").read_bytes()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith(said)
    assert "Traceback" not in err
    assert gone(workers)
    assert (tmp_path / "r" / "results.jsonl").read_bytes().startswith(stored)
    assert not (tmp_path / "r" / ".valbench.lock").exists()
    resume(tmp_path, (tmp_path / "r" / "results.jsonl").read_bytes(), monkeypatch, capsys)


def test_a_parent_killed_with_sigkill_leaves_no_worker_and_a_run_that_resumes(tmp_path, monkeypatch, capsys):
    proc = start(tmp_path)
    workers = children(proc.pid)
    proc.kill()
    proc.communicate(timeout=60)
    assert gone(workers)  # PR_SET_PDEATHSIG: no orphan computing on
    results = tmp_path / "r" / "results.jsonl"
    stored = results.read_bytes()
    stored = stored[:stored.rfind(b"\n") + 1]  # what a kill mid-write can leave: whole lines, then a torn one
    with open(results, "ab") as f:
        f.write(b'{"key": "torn", "sta')
    with pytest.warns(UserWarning, match=r"skipped 1 incomplete record line\(s\)"):
        err = resume(tmp_path, stored, monkeypatch, capsys)
    assert "taking over the lock left by valbench run (pid" in err  # the dead parent's lock, taken over


def test_a_full_disk_stops_the_run_in_one_line_and_leaves_no_half_record(tmp_path, monkeypatch, capsys):
    stub_outputs(monkeypatch)
    argv = grid(tmp_path)
    argv[argv.index("plugin-sleepy.seconds=1")] = "plugin-sleepy.seconds=0"
    argv[argv.index("--seeds") + 1] = "0,1"
    assert cli.main(argv) == 0
    stored = (tmp_path / "r" / "results.jsonl").read_bytes()
    real_write = os.write

    def short_write(fd, data):  # a disk with room for a few bytes only, for the results file
        try:
            if os.readlink(f"/proc/self/fd/{fd}").endswith("results.jsonl"):
                return real_write(fd, data[:10])
        except OSError:
            pass
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", short_write)
    argv[argv.index("--seeds") + 1] = "0,1,2,3"
    capsys.readouterr()
    assert cli.main([*argv, "--extend"]) == 2
    err = capsys.readouterr().err
    last = err.splitlines()[-1]  # after the run's "N cells -> DIR" line: the one line of the refusal
    assert last.startswith("error: cannot store a result in") and "wrote 10 of" in last and "Traceback" not in err
    assert (tmp_path / "r" / "results.jsonl").read_bytes() == stored  # nothing half-written
    monkeypatch.setattr(os, "write", real_write)
    assert cli.main([*argv, "--extend"]) == 0  # space again: the run resumes
    assert len((tmp_path / "r" / "results.jsonl").read_text().splitlines()) == 4
