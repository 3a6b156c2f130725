"""Each cell records the git commit of the code that ran it and whether the tree was dirty."""

import subprocess

from valbench import provenance


def _git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_commit_and_dirty_flag_follow_the_source_tree(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    monkeypatch.setattr(provenance, "SOURCE", repo)
    provenance.current_commit.cache_clear()
    assert provenance.current_commit() == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": False}
    (repo / "a.py").write_text("x = 2\n")
    provenance.current_commit.cache_clear()
    assert provenance.current_commit()["dirty"] is True
    provenance.current_commit.cache_clear()


def test_outside_a_checkout_nothing_is_claimed(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "SOURCE", tmp_path)
    provenance.current_commit.cache_clear()
    assert provenance.current_commit() == {"commit": None, "dirty": None}
    provenance.current_commit.cache_clear()


def test_a_cells_record_carries_its_commit_balanced_accuracy_and_constant_predictor():
    from valbench.grid import GridConfig
    from valbench.runner import run_cell

    cell, = GridConfig(methods=["random"], datasets=["wine"], budgets=[0.5], noise=[0.0]).cells()
    record = run_cell(cell)
    assert record["status"] == "ok"
    assert record["commit"] == _git(provenance.SOURCE, "rev-parse", "HEAD") and isinstance(record["dirty"], bool)
    assert 0 < record["budgets"][0]["balanced_accuracy"] <= 1 and 0 < record["full_balanced_accuracy"] <= 1
    assert abs(sum(record["train_class_shares"]) - 1) < 1e-12
    assert record["constant_balanced_accuracy"] == 1 / 3 and 0 < record["constant_accuracy"] < 1
