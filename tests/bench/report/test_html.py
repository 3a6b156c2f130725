"""The HTML report: rendered from a small results file written here, so no method runs."""

import json
import zlib

import matplotlib.image
import numpy as np
import pytest

from valbench.cli import main
from valbench.report.plots import method_palette
from valbench.protocol import DataError
from valbench.report.frame import budget_rows, label_cells, load_run
from valbench.report.html import FIGURES, ranking_table, render_report
from valbench.report.tables import results_table
from valbench.store import ResultsStore

METHODS = {"knn-shapley": 0.9, "loo": 0.6, "random": 0.5}  # name -> mislabel AUC it scores
DATASETS = {"wine": 106, "synthetic": 600}
BUDGETS = (0.05, 0.1, 0.2, 0.3, 0.5)
FAILURE = "broken: RuntimeError: solver <diverged> & gave up"


def ok_record(dataset, method, seed, n_train, noise=0.1, dataset_params=None):
    skill = METHODS[method]
    rng = np.random.default_rng(zlib.crc32(f"{dataset}{method}{seed}{n_train}".encode()))
    grid = np.linspace(0, 1, 21)
    found = np.clip(grid ** (1 / (4 * skill - 1)), 0, 1)  # steeper for better detectors
    return {
        "key": f"{dataset}-{method}-{seed}-{n_train}-{noise}", "dataset": dataset, "method": method, "seed": seed,
        "noise_rate": noise, "dataset_params": dataset_params or {}, "method_params": {}, "status": "ok",
        "error": None, "n_train": n_train, "n_noisy": int(noise * n_train), "host": "testhost",
        "budgets": [{"budget": b, "k": max(1, round(b * n_train)),
                     "accuracy": float(np.clip(0.5 + skill * b + rng.normal(0, 0.02), 0, 1)),
                     "loss": 0.5, "noisy_selected": 0.1} for b in BUDGETS],
        "full_accuracy": 0.9 + 0.01 * seed, "full_loss": 0.3,
        "mislabel_auc": float(skill + rng.normal(0, 0.02)), "kmeans_f1": float(skill - 0.3),
        "removal_curve": {"removed": [0.1, 0.3, 0.5],
                          "accuracy": [float(0.9 - skill * r + rng.normal(0, 0.02)) for r in (0.1, 0.3, 0.5)]},
        "detection_curve": {"inspected": grid.tolist(), "found": found.tolist()},
        "wall_s": {"knn-shapley": 0.01, "loo": 3.0, "random": 0.0}[method] * n_train / 100 * (1 + 0.1 * seed),
        "cpu_s": 0.1, "peak_rss_mb": 300.0, "utility_evals": n_train,
    }


def failed_record(dataset, seed):
    return {"key": f"{dataset}-broken-{seed}", "dataset": dataset, "method": "broken", "seed": seed,
            "noise_rate": 0.1, "dataset_params": {}, "method_params": {}, "status": "failed",
            "error": FAILURE, "traceback": "Traceback (most recent call last):\n  ...\nRuntimeError: gave up\n"}


def write_run(run_dir, records, config=None):
    store = ResultsStore(run_dir)
    for record in records:
        store.append(record)
    (run_dir / "config.json").write_text(json.dumps(config or {"methods": sorted(METHODS), "seeds": [0, 1]}))
    return run_dir


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    records = [ok_record(d, m, s, n) for d, n in DATASETS.items() for m in METHODS for s in (0, 1, 2)]
    records.append(failed_record("wine", 0))  # the rank test needs 5 (dataset, seed) blocks: 2 datasets x 3 seeds
    config = {"methods": [*METHODS, "broken"], "datasets": list(DATASETS), "seeds": [0, 1, 2],
              "budgets": list(BUDGETS), "marker": "config-marker-1234"}
    write_run(run_dir, records, config)
    return render_report(run_dir)


def assert_valid_png(path):
    assert path.exists(), path
    assert path.stat().st_size < 400_000, f"{path.name} is {path.stat().st_size} bytes"
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert pixels[..., :3].var() > 1e-3, f"{path.name} looks blank"


FIGURES_OF_A_PLAIN_RUN = ("ranks", "quality_cost", "subset_value", "removal", "detection_curves", "mislabel_auc",
                          "cost")


def test_every_figure_is_a_non_blank_png(report):
    for key in FIGURES_OF_A_PLAIN_RUN:
        assert_valid_png(report.parent / FIGURES[key])
    assert not (report.parent / FIGURES["cost_vs_size"]).exists()  # the run did not vary n_train


def test_index_names_every_method_dataset_and_reuses_the_summary(report):
    text = report.read_text()
    assert report.name == "index.html"
    for name in [*METHODS, *DATASETS, "broken"]:
        assert name in text
    for key in FIGURES_OF_A_PLAIN_RUN:
        assert FIGURES[key] in text
    assert "data:image/png;base64," in text  # self-contained
    assert (report.parent / "summary.md").exists() and (report.parent / "results.csv").exists()
    assert "config-marker-1234" in text  # config.json verbatim
    assert "numpy" in text and "torch" in text and "commit" in text
    assert "/" + "work/" not in text.split("id='environment'")[1]  # no absolute path of the rendering machine
    assert "±" in text


def test_failed_cell_is_in_the_failure_table_escaped(report):
    text = report.read_text()
    failures = text.split("id='failures'")[1].split("</details>")[0]
    assert "broken" in failures and "wine" in failures
    assert "solver &lt;diverged&gt; &amp; gave up" in failures
    assert "<diverged>" not in text


def test_size_sweep_adds_time_vs_train_size(tmp_path):
    records = [ok_record("synthetic", m, s, n, dataset_params={"n_train": n})
               for m in METHODS for s in (0, 1) for n in (100, 200, 400)]
    index = render_report(write_run(tmp_path, records))
    assert_valid_png(tmp_path / FIGURES["cost_vs_size"])
    assert "synthetic (n_train=200)" in index.read_text()


def test_rerender_drops_stale_figures_and_handles_an_empty_run(tmp_path):
    (tmp_path / FIGURES["cost_vs_size"]).write_bytes(b"stale")
    index = render_report(tmp_path)
    assert "No results yet" in index.read_text()
    assert not (tmp_path / FIGURES["cost_vs_size"]).exists()
    with pytest.raises(DataError, match="does not exist"):
        render_report(tmp_path / "missing")


def test_cli_report_subcommand(tmp_path, capsys):
    write_run(tmp_path, [ok_record("wine", m, 0, 106) for m in METHODS])
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "index.html").exists()
    assert str(tmp_path / "index.html") in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_palette_is_keyed_by_sorted_method_name():
    one = method_palette(["loo", "random", "knn-shapley"])
    two = method_palette(["random", "knn-shapley", "loo", "loo"])
    assert one == two and len(set(one.values())) == 3


def test_ranking_puts_the_better_method_first():
    records = [ok_record(d, m, s, n) for d, n in DATASETS.items() for m in METHODS for s in (0, 1)]
    cells = label_cells(records)
    table = ranking_table(cells, budget_rows(cells)).set_index("method")
    assert table.index[0] == "knn-shapley"
    assert table.loc["knn-shapley", "mislabel AUC rank"].startswith("1.00 ± 0.00 (2)")
    assert table.loc["random", "fit time rank"].startswith("1.00")


def test_a_run_where_every_cell_failed_still_reports(tmp_path):
    index = render_report(write_run(tmp_path, [failed_record("wine", 0), failed_record("synthetic", 1)]))
    text = index.read_text()
    assert "(0 ok, 2 failed)" in text and "No results yet" in text
    assert not any((tmp_path / name).exists() for name in FIGURES.values())


def test_the_page_opens_with_the_verdict_then_ranks_and_quality_vs_cost(report):
    text = report.read_text()
    body = text.split("</nav>")[1]
    order = [body.index(f"id='{anchor}'") for anchor in ("answer", "verdict", "ranks", "quality-cost", "value",
                                                          "removal")]
    assert order == sorted(order)
    verdict = body.split("id='verdict'")[1].split("id='ranks'")[0]
    for dataset in DATASETS:
        assert f"<h4>{dataset}</h4>" in verdict and f"href='#d-{dataset}'" in body.split("id='verdict'")[0]
    assert "knn-shapley" in verdict and ("cheapest within one point" in verdict or "nothing cheaper" in verdict)


def test_palette_gives_each_family_its_own_hue():
    families = {"loo": "valuation", "tmc": "valuation", "hostcp": "set-selection", "random": "reference",
                "odv-KNN": "peer"}
    palette = method_palette(list(families), families)
    red, green, blue = (np.array([palette[m][i] for m in families]) for i in range(3))
    assert blue[0] > red[0] and blue[1] > red[1]  # valuation: blues
    assert green[2] > red[2] and green[2] > blue[2]  # set selection: green
    assert abs(red[3] - blue[3]) < 0.02 and abs(red[3] - green[3]) < 0.02  # reference: grey
    assert red[4] > blue[4]  # peer: orange


def test_cells_over_their_cap_are_marked_not_missing(tmp_path):
    records = [ok_record(d, m, s, n) for d, n in DATASETS.items() for m in ("knn-shapley", "random") for s in (0, 1)]
    records += [{**ok_record("synthetic", "loo", s, 600), "key": f"cap-{s}", "status": "over cap",
                 "error": "loo: over cap: the fit ran past 60 learner fits on the full train split (60 x 0.5 s = 30 s)"}
                for s in (0, 1)]
    records += [ok_record("wine", "loo", s, 106) for s in (0, 1)]
    index = render_report(write_run(tmp_path, records))
    text = index.read_text()
    assert "loo on synthetic (2 cells)" in text and text.count("over cap") >= 4
    table = results_table(load_run(tmp_path)).set_index(["dataset", "method"])
    capped = table.loc[[i for i in table.index if i[1] == "loo" and "synthetic" in i[0]][0]]
    assert capped["seeds ok / grid"] == "0/2 (2 over cap) (fewer than the grid)"
    assert capped["mislabel AUC"] == "over cap"
    assert assert_valid_png(tmp_path / FIGURES["mislabel_auc"]) is None
