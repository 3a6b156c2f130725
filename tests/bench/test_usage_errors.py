"""Every usage error is refused before any cell runs: one line naming what is wrong and what is valid, exit 2,
no traceback, no run directory. Table-driven, in-process (``valbench.cli.main``), so the whole table runs in
seconds."""

from pathlib import Path

import pytest

from valbench.cli import main

PLUGIN = str(Path(__file__).parent / "plugins" / "valbench_test_plugin.py")
ANIMALS = str(Path(__file__).parents[1] / "datasets" / "data" / "animals.csv")
BASE = ["--methods", "random", "--datasets", "wine"]


def run_args(*args: str) -> list[str]:
    """A small valid grid with ``args`` appended (later flags override earlier ones)."""
    return [*BASE, *args]


CASES = [
    # (what, run arguments, expected message)
    ("unknown method", run_args("--methods", "nope"), "unknown method 'nope'; valid methods: "),
    ("unknown dataset", run_args("--datasets", "nope"), "unknown dataset 'nope'; valid datasets: breast_cancer"),
    ("unknown method parameter", run_args("--methods", "loo", "--set", "loo.bogus=1"),
     "method 'loo': unknown parameter(s) ['bogus']; valid: ['block', 'newton_max_params', 'utility', 'warm_start']"),
    ("method parameter of the wrong type", run_args("--methods", "knn-shapley", "--set", "knn-shapley.k=ten"),
     "method 'knn-shapley': k='ten' is invalid; k takes a whole number (int) (default 10)"),
    ("value a method refuses", run_args("--methods", "knn-shapley", "--set", "knn-shapley.k=5,0"),
     "method 'knn-shapley': k must be >= 1, got 0"),
    ("hostcp mode", run_args("--methods", "hostcp", "--set", "hostcp.mode=nope"),
     "method 'hostcp': mode must be one of"),
    ("tmc tolerance", run_args("--methods", "tmc-shapley", "--set", "tmc-shapley.tolerance=-1"),
     "method 'tmc-shapley': tolerance must be >= 0, got -1"),
    ("beta-shapley alpha", run_args("--methods", "beta-shapley", "--set", "beta-shapley.alpha=0"),
     "method 'beta-shapley': alpha and beta must be > 0"),
    ("banzhaf samples", run_args("--methods", "banzhaf", "--set", "banzhaf.num_subsets=2"),
     "method 'banzhaf': num_subsets must be >= 4, got 2"),
    ("unknown utility", run_args("--methods", "loo", "--set", "loo.utility=f1"),
     "method 'loo': unknown utility 'f1'; valid: ['accuracy', 'neg_loss']"),
    ("influence damping", run_args("--methods", "influence", "--set", "influence.damping=-1"),
     "method 'influence': damping must be a number >= 0 or 'auto', got -1"),
    ("parameters of a method not in the grid", run_args("--set", "nope.k=1"), "unknown method 'nope'"),
    ("unknown dataset parameter", run_args("--datasets", "digits", "--data", "digits.bogus=3"),
     "dataset 'digits': unknown parameter(s) ['bogus']; valid: ['n_test', 'n_train', 'n_valid']"),
    ("seed as a dataset parameter", run_args("--data", "wine.seed=3"), "the seed is set with --seeds"),
    ("impossible dataset size", run_args("--data", "wine.n_train=500"),
     "dataset 'wine': requested 500 points (n_train=500, n_valid=None, n_test=None) but only 178 exist"),
    ("zero dataset size", run_args("--data", "wine.n_test=0"),
     "dataset 'wine': n_test=0 must be a point count >= 1 or a fraction of the rows in (0, 1)"),
    ("dataset parameter of the wrong type", run_args("--data", "wine.n_train=many"),
     "dataset 'wine': n_train='many' is invalid; n_train takes a number (or none)"),
    ("synthetic fractions", run_args("--datasets", "synthetic", "--data", "synthetic.redundancy=0.9"),
     "redundancy=0.9 and rare=0.1 must be fractions"),
    ("a budget larger than the train split", run_args("--budgets", "0.1,500"),
     "dataset 'wine': budget 500 points exceeds its 106 train points"),
    ("budget 0", run_args("--budgets", "0,0.5"), "budget 0.0 is invalid"),
    ("budget as a fraction above 1", run_args("--budgets", "1.5"), "budget 1.5 is invalid"),
    ("pruning direction", run_args("--methods", "aum", "--set", "aum.keep=hard,all"),
     "method 'aum': keep='all' must be one of ['hard', 'easy']"),
    ("cnn on a dataset without images", run_args("--learner", "cnn"),
     "learner 'cnn' needs images, but dataset 'wine' carries no image shape; datasets with one: digits"),
    ("noise rate 1", run_args("--noise", "1.0"), "noise rate 1.0 is outside [0, 1)"),
    ("negative noise rate", run_args("--noise=-0.1"), "noise rate -0.1 is outside [0, 1)"),
    ("negative seed", run_args("--seeds=-1"), "seed -1 is invalid: seeds are whole numbers in [0, 4294967294]"),
    ("seed too large", run_args("--seeds", str(2**40)), "seed 1099511627776 is invalid"),
    ("time limit 0", run_args("--time-limit", "0"), "time limit 0.0 is invalid: give seconds per cell"),
    ("negative time limit", run_args("--time-limit=-5"), "time limit -5.0 is invalid"),
    ("jobs 0", run_args("--jobs", "0"), "--jobs 0 is invalid: give the number of cells run in parallel (>= 1)"),
    ("jobs -3", run_args("--jobs=-3"), "--jobs -3 is invalid"),
    ("scheduler without dask", run_args("--scheduler", "tcp://x:8786"),
     "--scheduler tcp://x:8786 needs --backend dask"),
    ("run id latest", run_args("--run-id", "latest"), "--run-id 'latest' is invalid: give a plain directory name"),
    ("missing config", ["--config", "missing.toml"], "config file missing.toml not found"),
    ("missing table file", run_args("--datasets", "table", "--data", "table.path=nope.csv", "--data",
                                    "table.label=y"), "dataset 'table': file 'nope.csv' not found"),
    ("unknown table label", run_args("--datasets", "table", "--data", f"table.path={ANIMALS}", "--data",
                                     "table.label=kind"), "label column 'kind' not found; columns: ['id'"),
]


@pytest.fixture
def out(tmp_path):
    return tmp_path / "reports"


def assert_refused(argv: list[str], message: str, out: Path, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line, no traceback
    assert not out.exists()  # no run directory


@pytest.mark.parametrize("what, args, message", CASES, ids=[c[0] for c in CASES])
def test_usage_error_is_one_line_and_exit_2_before_anything_runs(what, args, message, out, capsys):
    assert_refused(["run", *args, "--no-progress", "--out", str(out)], message, out, capsys)


def test_config_file_errors(tmp_path, out, capsys):
    config = tmp_path / "grid.toml"
    for text, message in [
        ("methods = [\"random\"\n", "is not valid TOML"),
        ("methods = \"random\"\ndatasets = [\"wine\"]\n", "`methods` must be a list of method names, got 'random'"),
        ("methods = [\"random\"]\ndatasets = [\"wine\"]\nnoise = [\"a\"]\n", "`noise` must be a list of numbers"),
        ("methods = [\"random\"]\ndatasets = [\"wine\"]\nlearner = {name = \"svm\"}\n",
         "unknown learner 'svm'; valid: ['cnn', 'logreg', 'mlp']"),
        ("methods = [\"random\"]\ndatasets = [\"wine\"]\nlearner = {name = \"mlp\", width = 3}\n",
         "learner 'mlp': unknown parameter(s) ['width']; valid: ['hidden', 'l2', 'max_iter'"),
        ("methods = [\"random\"]\ndatasets = [\"wine\"]\nlearner = {name = \"logreg\", l2 = -1.0}\n",
         "l2 must be >= 0, got -1.0"),
        ("methods = [\"random\"]\ndatasets = [\"digits\"]\nlearner = {name = \"cnn\", optimizer = \"rmsprop\"}\n",
         "optimizer must be one of ('adam', 'sgd'), got 'rmsprop'"),
        ("methods = [\"random\"]\ndatasets = [\"digits\"]\nlearner = {name = \"cnn\", image_shape = [1, 8, 8]}\n",
         "learner 'cnn': unknown parameter(s) ['image_shape']"),
        ("methods = [\"random\"]\ndatasets = [\"wine\"]\nexclude = [{method = \"lo\"}]\n", "unknown method 'lo'"),
        ("methods = [\"random\"]\ndatasets = [\"wine\"]\ntime_limit = \"1h\"\n", "time limit '1h' is invalid"),
    ]:
        config.write_text(text)
        assert_refused(["run", "--config", str(config), "--no-progress", "--out", str(out)], message, out, capsys)


def test_out_must_be_a_writable_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_refused(["run", *BASE, "--out", str(blocker / "reports")], "exists and is not a directory",
                   blocker / "reports", capsys)


def test_a_missing_plugin_file(out, capsys):
    assert_refused(["--plugin", "nope.py", "run", *BASE, "--out", str(out)], "plugin file 'nope.py' not found",
                   out, capsys)


def test_a_plugin_method_parameter_is_checked_up_front(out, capsys):
    assert_refused(["--plugin", PLUGIN, "run", *BASE, "--methods", "plugin-sleepy", "--set",
                    "plugin-sleepy.seconds=soon", "--out", str(out)],
                   "method 'plugin-sleepy': seconds='soon' is invalid; seconds takes a number (default 0.0)", out, capsys)


def test_a_malformed_flag_value_is_named_by_argparse(out, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *BASE, "--seeds", "one", "--out", str(out)])
    assert exit_info.value.code == 2
    assert "argument --seeds: invalid comma-separated int value: 'one'" in capsys.readouterr().err
    assert not out.exists()


def test_an_out_folder_that_cannot_be_created_is_a_usage_error(capsys):
    """/proc refuses new folders even to root: the first write fails, which must be one line and exit 2."""
    out = Path("/proc/valbench-no-such-run")
    assert_refused(["run", *BASE, "--no-progress", "--out", str(out)], f"--out {out}: cannot create or write",
                   out, capsys)


def test_jobs_above_the_core_count_are_capped_with_one_warning(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("valbench.cli.available_cores", lambda: 2)
    assert main(["run", *BASE, "--seeds", "0", "--jobs", "1000", "--no-progress", "--out", str(tmp_path)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: --jobs 1000 exceeds this machine's 2 CPU cores; running 2 cells at a time "
                        "(a cluster takes more through --backend dask)"]


def test_repeated_seeds_methods_and_datasets_run_once_with_a_warning(tmp_path, capsys):
    argv = ["run", "--methods", "random,random", "--datasets", "wine,wine", "--seeds", "0,1,0", "--no-progress",
            "--out", str(tmp_path), "--run-id", "dup"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: methods random given more than once; each runs once" in err
    assert "warning: datasets wine given more than once; each runs once" in err
    assert "warning: seeds 0 given more than once; each runs once" in err
    rows = (tmp_path / "dup" / "results.jsonl").read_text().splitlines()
    assert len(rows) == 2  # random x wine x seeds {0, 1}
