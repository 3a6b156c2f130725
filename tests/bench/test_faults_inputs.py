"""Bad configs, flags, plugins and files: one line on stderr, exit 2, no traceback, and nobody's file touched.

In-process (``valbench.cli.main``); the few runs that must start have the report rendering stubbed.
"""

import json
import os
import warnings
from pathlib import Path

import pytest

import valbench.cli as cli
import valbench.report
from valbench.grid import GridConfig
from valbench.registry import UNAVAILABLE, load_installed
from valbench.store import ResultsStore

load_installed()
TINY = ["--methods", "random", "--datasets", "wine", "--budgets", "0.5", "--no-progress", "--no-cache"]


def refused(argv: list[str], message: str, capsys) -> str:
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    return err


def stub_outputs(monkeypatch):
    monkeypatch.setattr(cli, "_render_report", lambda run_dir: None)  # the run's report (publish) is not under test


CONFIGS = [  # (what, config file bytes, extra flags, message)
    ("empty config", b"", [], "the grid needs at least one method and one dataset"),
    ("only [method_params], the rest by flags", b"[method_params.knn-shapley]\nk = 2.5\n",
     ["--methods", "knn-shapley", "--datasets", "wine"], "k=2.5 is invalid; k takes a whole number (int)"),
    ("learner of the wrong type", b'methods = ["random"]\ndatasets = ["wine"]\nlearner = 5\n', [],
     "`learner` must be a table"),
    ("method_params of the wrong type", b'methods = ["random"]\ndatasets = ["wine"]\nmethod_params = 3\n', [],
     "`method_params` must be a table of tables"),
    ("method_params entry not a table", b'methods = ["random"]\ndatasets = ["wine"]\n[method_params]\nloo = 3\n', [],
     "`method_params` must be a table of tables"),
    ("exclude of the wrong type", b'methods = ["random"]\ndatasets = ["wine"]\nexclude = "loo"\n', [],
     "`exclude` must be a list of tables"),
    ("not UTF-8", b'methods = ["random"]\n# caf\xe9\ndatasets = ["wine"]\n', [], "is not UTF-8 text"),
    ("learner parameter of the wrong type", b'methods = ["random"]\ndatasets = ["wine"]\n[learner]\nname = "mlp"\n'
     b'hidden = "big"\n', [], "learner 'mlp': hidden='big' is invalid; hidden takes a whole number (int)"),
    ("learner parameter no one reads", b'methods = ["random"]\ndatasets = ["wine"]\n[learner]\nbogus = 1\n', [],
     "learner 'logreg': unknown parameter(s) ['bogus']"),
    ("memory limit", b'methods = ["random"]\ndatasets = ["wine"]\nmemory_limit = -1\n', [], "memory limit -1"),
    ("every cell excluded", b'methods = ["random"]\ndatasets = ["wine"]\nexclude = [{method = "random"}]\n', [],
     "every cell of the grid is removed by its `exclude` rules"),
]


@pytest.mark.parametrize("what, content, flags, message", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_a_bad_config_is_one_line(what, content, flags, message, tmp_path, capsys):
    config = tmp_path / "grid.toml"
    config.write_bytes(content)
    refused(["run", "--config", str(config), *flags, "--out", str(tmp_path / "out")], message, capsys)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


FLAGS = [  # (what, run flags, message)
    ("config that is a directory", ["--config", "{tmp}"], "is a directory; give a TOML file"),
    ("malformed scheduler", ["--backend", "dask", "--scheduler", "not an address"],
     "--scheduler 'not an address' is not a scheduler address"),
    ("an int parameter given 2.5", ["--methods", "knn-shapley", "--set", "knn-shapley.k=2.5"],
     "method 'knn-shapley': k=2.5 is invalid; k takes a whole number (int) (default 10)"),
    ("a boolean given maybe", ["--methods", "craig", "--set", "craig.weighted=maybe"],
     "method 'craig': weighted='maybe' is invalid; weighted takes a boolean (true/false/yes/no/1/0)"),
    ("a boolean given 2", ["--methods", "craig", "--set", "craig.weighted=2"], "weighted=2 is invalid"),
    ("a dataset boolean given maybe", ["--datasets", "table", "--data", "table.drop_nonfinite=maybe"],
     "dataset 'table': drop_nonfinite='maybe' is invalid; drop_nonfinite takes a boolean"),
    ("a choice outside the rule", ["--methods", "plugin-hostile", "--set", "plugin-hostile.act=nope"],
     "act='nope' is invalid; act takes one of ['ok', 'exit'"),
]


@pytest.mark.parametrize("what, flags, message", FLAGS, ids=[f[0] for f in FLAGS])
def test_a_bad_flag_is_one_line(what, flags, message, tmp_path, capsys):
    plugin = ["--plugin", str(Path(__file__).parent / "plugins" / "valbench_hostile_plugin.py")]
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    refused([*plugin, "run", *TINY, *flags, "--out", str(tmp_path / "out")], message, capsys)


def test_booleans_read_yes_no_one_zero_in_any_case():
    for text, value in (("no", False), ("YES", True), ("0", False), ("1", True), ("False", False)):
        grid = GridConfig(methods=["craig"], datasets=["wine"], method_params={"craig": {"weighted": text}})
        grid.check_data = lambda: None
        grid.validate()
        assert [c.method_params["weighted"] for c in grid.cells()] == [value]


def test_a_broken_plugin_is_named_once_and_does_not_stop_list_or_other_runs(tmp_path, monkeypatch, capsys):
    broken = tmp_path / "valbench_broken_plugin.py"
    broken.write_text("raise ZeroDivisionError('division by zero at import')\n")
    UNAVAILABLE.pop(str(broken), None)
    try:
        assert cli.main(["--plugin", str(broken), "list"]) == 0
        out, err = capsys.readouterr()
        assert err.count("valbench_broken_plugin.py") == 1 and "ZeroDivisionError" in err
        assert "random" in out and "valbench_broken_plugin.py" in out
        stub_outputs(monkeypatch)
        assert cli.main(["--plugin", str(broken), "run", *TINY, "--out", str(tmp_path / "out")]) == 0
        assert len((tmp_path / "out" / "latest" / "results.jsonl").read_text().splitlines()) == 1
        refused(["--plugin", str(broken), "run", *TINY, "--methods", "from-the-broken-one", "--out",
                 str(tmp_path / "out")], "unavailable: plugin", capsys)
    finally:
        UNAVAILABLE.pop(str(broken), None)


def test_a_plugin_named_like_a_standard_module_is_refused(tmp_path, capsys):
    shadow = tmp_path / "json.py"
    shadow.write_text("x = 1\n")
    refused(["--plugin", str(shadow), "list"], "is named like the module 'json' that Python already has", capsys)


def test_corrupt_result_lines_are_skipped_with_one_warning_that_counts_them(tmp_path):
    store = ResultsStore(tmp_path)
    good = {"key": "a", "dataset": "wine", "method": "random", "status": "failed", "error": "x"}
    store.append(good)
    with open(store.path, "ab") as f:
        f.write(b'7\n{"key": "b"}\n\xff\xfe not utf-8\n["a list"]\n')
    store.append({**good, "key": "c"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [r["key"] for r in store.records()] == ["a", "c"]
    assert len(caught) == 1 and "skipped 4 incomplete record line(s) (line 2, 3, 4, 5" in str(caught[0].message)


def test_a_truncated_config_json_is_one_line(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text('{"methods": ["ran')
    refused(["run", *TINY, "--out", str(tmp_path), "--run-id", "r"], "config.json is not valid JSON", capsys)
    assert (tmp_path / "r" / "config.json").read_text() == '{"methods": ["ran'


def test_report_and_summary_refuse_a_folder_that_is_not_a_run_and_touch_nothing(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("precious")
    for command in ("report", "summary"):
        refused([command, str(mine)], "is not a valbench run directory", capsys)
        refused([command, str(tmp_path / "nowhere" / "run")], "does not exist", capsys)
    assert sorted(p.name for p in mine.iterdir()) == ["index.html"] and (mine / "index.html").read_text() == "precious"
    assert not (tmp_path / "nowhere").exists()


def test_report_replaces_only_files_it_wrote(tmp_path, monkeypatch, capsys):
    stub_outputs(monkeypatch)
    assert cli.main(["run", *TINY, "--out", str(tmp_path), "--run-id", "r"]) == 0
    run = tmp_path / "r"

    def render(run_dir):  # what the report writes, as far as the run directory is concerned
        for name in ("index.html", "cost.png"):
            (Path(run_dir) / name).write_text(f"rendered {name}")
        return Path(run_dir) / "index.html"

    monkeypatch.setattr(valbench.report, "publish", render)
    (run / "cost.png").write_text("the user's own figure")
    refused(["report", str(run)], "cost.png exists and was not written by valbench", capsys)
    assert (run / "cost.png").read_text() == "the user's own figure" and not (run / "index.html").exists()
    (run / "cost.png").unlink()
    assert cli.main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "index.html")
    assert (run / "cost.png").read_text() == "rendered cost.png"
    assert cli.main(["report", str(run)]) == 0  # its own files it replaces
    assert not [p.name for p in run.iterdir() if p.name.startswith(".valbench-staging")]


def test_an_unwritable_cache_folder_is_refused_before_any_cell(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VALBENCH_CACHE_DIR", "/proc/valbench-cache")
    argv = ["run", *[f for f in TINY if f != "--no-cache"], "--out", str(tmp_path)]
    refused(argv, "the fit cache folder (VALBENCH_CACHE_DIR; or run with --no-cache) /proc/valbench-cache is not "
                  "writable", capsys)
    assert not list(tmp_path.glob("run-*"))


def test_a_run_id_reused_with_another_grid_needs_extend(tmp_path, monkeypatch, capsys):
    stub_outputs(monkeypatch)
    first = ["run", *TINY, "--out", str(tmp_path), "--run-id", "r"]
    assert cli.main(first) == 0
    refused([*first, "--seeds", "0,1"], "holds a different grid (config.json); add --extend", capsys)
    assert cli.main([*first, "--seeds", "0,1", "--extend"]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert [g["seeds"] for g in config["grids"]] == [[0], [0, 1]] and config["seeds"] == [0, 1]
    assert len((tmp_path / "r" / "results.jsonl").read_text().splitlines()) == 2
    assert cli.main([*first, "--seeds", "0,1"]) == 0  # the grid it holds now: a plain resume


def test_extending_a_run_with_part_of_its_grid_keeps_the_grid_it_holds(tmp_path, monkeypatch, capsys):
    """Rerunning one seed of a two-seed run (--extend after deleting its records) must not shrink the grid the
    report counts to that seed."""
    stub_outputs(monkeypatch)
    full = ["run", *TINY, "--out", str(tmp_path), "--run-id", "r", "--seeds", "0,1"]
    assert cli.main(full) == 0
    assert cli.main([*full[:-2], "--seeds", "1", "--extend"]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["seeds"] == [0, 1] and [g["seeds"] for g in config["grids"]] == [[0, 1], [1]]
    assert cli.main(full) == 0  # still the grid it holds: a plain resume, no --extend needed
    assert cli.main([*full[:-2], "--seeds", "0,1,2", "--extend"]) == 0  # a larger grid becomes the held one
    assert json.loads((tmp_path / "r" / "config.json").read_text())["seeds"] == [0, 1, 2]


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, monkeypatch, capsys):
    stub_outputs(monkeypatch)
    (tmp_path / "r").mkdir()
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (tmp_path / "r" / ".valbench.lock").write_text(json.dumps({"pid": dead, "host": os.uname().nodename,
                                                               "started": "earlier", "command": "run"}))
    assert cli.main(["run", *TINY, "--out", str(tmp_path), "--run-id", "r"]) == 0
    assert f"taking over the lock left by valbench run (pid {dead}" in capsys.readouterr().err
    assert not (tmp_path / "r" / ".valbench.lock").exists()
