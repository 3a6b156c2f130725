"""Every output is a rendering of one verdict: HTML, summary.md, the terminal and the README name the same best,
the same tie list and the same cheap choice, and none says more than was measured."""

import json
import re

import pytest

from valbench.report import publish
from valbench.report.build import build_report
from valbench.report.html import _answer_html
from valbench.report.markdown import summary_markdown
from valbench.report.readme import (ANSWER_END, ANSWER_START, VERDICT_END, VERDICT_START, answer_markdown,
                                    update_readme, verdict_lines)
from valbench.report.terminal import terminal_text
from valbench.store import ResultsStore

BUDGETS = (0.2, 0.5)


def record(method, seed, level, cost_fits, *, balanced=None, shares=(0.4, 0.3, 0.3), constant=0.4):
    """An ok cell of wine at noise 0.1 whose judged score is ``level`` + 0.1 x budget at every budget."""
    return {
        "key": f"wine-{method}-{seed}", "dataset": "wine", "method": method, "seed": seed, "noise_rate": 0.1,
        "dataset_params": {}, "method_params": {}, "status": "ok", "error": None, "n_train": 100, "n_noisy": 10,
        "budgets": [{"budget": b, "k": int(b * 100), "accuracy": level + 0.1 * b,
                     "balanced_accuracy": (level if balanced is None else balanced) + 0.1 * b, "loss": 0.5,
                     "noisy_selected": 0.1} for b in BUDGETS],
        "full_accuracy": 0.9, "full_balanced_accuracy": 0.9, "train_class_shares": list(shares),
        "constant_accuracy": constant, "constant_balanced_accuracy": 1 / len(shares), "mislabel_auc": 0.6,
        "kmeans_f1": 0.5, "wall_s": cost_fits * 0.1, "cpu_s": cost_fits * 0.1, "learner_fit_cpu_s": 0.1,
        "peak_rss_mb": 100.0, "utility_evals": 10, "commit": "0123abcd" * 5, "dirty": False,
    }


def write(run_dir, records, seeds=(0, 1, 2)):
    run_dir.mkdir(exist_ok=True)
    store = ResultsStore(run_dir)
    for r in records:
        store.append(r)
    methods = sorted({r["method"] for r in records})
    (run_dir / "config.json").write_text(json.dumps({"methods": methods, "datasets": ["wine"], "seeds": list(seeds),
                                                     "noise": [0.1], "budgets": list(BUDGETS)}))
    return run_dir


def levels(run_dir, table, seeds=(0, 1, 2), grid_seeds=None):
    """Records of every (method, seed): ``table`` maps method -> (level, cost in learner fits); the config asks
    for ``grid_seeds`` (default: the seeds recorded)."""
    return write(run_dir, [record(m, s, level + 0.01 * s, cost) for m, (level, cost) in table.items() for s in seeds],
                 seeds=grid_seeds or seeds)


def outputs(run_dir):
    """The answer as each output shows it: HTML answer section, summary.md, terminal text, README answer block."""
    report = build_report(run_dir)
    return report, {"html": _answer_html(report), "summary": summary_markdown(report),
                    "terminal": terminal_text(report), "readme": answer_markdown(report)}


TIED = {"knn-shapley": (0.70, 2.0), "loo": (0.70, 9.0), "kcenter": (0.60, 1.0), "random": (0.50, 0.0)}


def test_exact_ties_name_the_same_best_and_tie_list_in_every_output(tmp_path):
    run_dir = levels(tmp_path / "run", TIED)
    terminal = publish(run_dir)  # writes index.html, summary.md, figures; returns what the terminal shows
    readme = tmp_path / "README.md"
    readme.write_text(f"{ANSWER_START}\n{ANSWER_END}\n{VERDICT_START}\n{VERDICT_END}\n")
    update_readme(run_dir, readme)
    texts = {"html": (run_dir / "index.html").read_text(), "summary": (run_dir / "summary.md").read_text(),
             "terminal": terminal, "readme": readme.read_text()}
    for name, text in texts.items():
        # the tie goes to the cheaper (knn-shapley, 2 fits, against loo's 9), and the tie list is the same
        assert "knn-shapley (0.745)" in text, name
        assert "exact tie: knn-shapley, loo" in text, name
        assert "loo (0.745)" not in text.split("exact tie")[0], name
    for name in ("html", "summary", "readme"):
        assert "tied exactly with loo (the tie goes to the cheaper, then the name)" in texts[name], name
    assert texts["html"].count("<tr class=flagged>") == 1  # the row with a flag is marked, and only it
    # reversing the records' order changes nothing
    flipped = levels(tmp_path / "flipped", dict(reversed(list(TIED.items()))))
    assert build_report(flipped).verdict.settings[0].choice == build_report(run_dir).verdict.settings[0].choice


def test_one_seed_prints_no_interval_and_no_verdict_word(tmp_path):
    report, texts = outputs(levels(tmp_path / "run", TIED, seeds=(0,), grid_seeds=[0]))
    setting, = report.verdict.settings
    assert setting.gain_seeds == 1 and not setting.tested
    for name, text in texts.items():
        assert "+20.0 (1 seed: not tested)" in text, name
        answer = text.split("flags")[1] if name != "html" else text
        assert not re.search(r"\[[+-]\d", answer), name  # no interval anywhere in the answer
    summary = texts["summary"]
    assert "wins" not in summary and "loses" not in summary and "± 0.000" not in summary
    assert "not tested (1 seed)" in summary  # the per-budget table says why nothing is separated


def test_a_partial_run_says_so_first_and_flags_missing_seeds(tmp_path):
    run_dir = levels(tmp_path / "run", TIED, seeds=(0, 1), grid_seeds=[0, 1, 2])
    report, texts = outputs(run_dir)
    assert report.frames.grid.counts["not run"] == 4 and report.frames.grid.partial
    assert texts["summary"].splitlines()[0].startswith("# valbench summary: run, partial run: 8 of the 12 cells")
    assert texts["terminal"].splitlines()[0].startswith("valbench answer: run, partial run")
    assert texts["readme"].startswith("**partial run: 8 of the 12 cells")
    for name, text in texts.items():
        assert "partial: 4 cells not run" in text and "every method 2/3" in text, name
    index = render(run_dir)
    assert "<h1>valbench report: run (partial run)</h1>" in index


def test_a_cell_rerun_under_a_new_default_parameter_is_shown_once(tmp_path):
    # loo gained a parameter with a default: its cells ran again under new keys; the report shows the later records
    run_dir = levels(tmp_path / "run", TIED)
    store = ResultsStore(run_dir)
    for seed in (0, 1, 2):
        store.append({**record("loo", seed, 0.30, 9.0), "key": f"wine-loo-{seed}-v2", "method_params": {"new": 1}})
    report, texts = outputs(run_dir)
    assert report.frames.grid.superseded == 3 and not report.frames.grid.partial
    assert (report.frames.cells["method"] == "loo").sum() == 3  # one entry, not "loo" and "loo (new=1)"
    for name, text in texts.items():
        assert "knn-shapley (0.745)" in text and "exact tie: " not in text, name  # the old loo's tie is gone
    texts["html"] = render(run_dir)  # the status line heads the page, not its answer section
    for name, text in texts.items():
        assert "complete run: 12 of the 12 cells" in text and "3 earlier records of rerun cells" in text, name


def test_a_failed_cell_rerun_under_a_new_key_replaces_it_though_it_recorded_no_learner_params(tmp_path):
    # the cell failed before its learner was built (no learner_params); it ran again, ok, after the method gained a
    # parameter (a new key): one record of that cell is shown, and the failure is no longer counted
    grid_learner = {"learner": {"name": "logreg"}}
    rows = [{**record(m, s, level + 0.01 * s, cost), **grid_learner, "learner_params": {"l2": 1e-3}}
            for m, (level, cost) in TIED.items() for s in (0, 1, 2)]
    failed = {**record("loo", 0, 0.0, 9.0), **grid_learner, "key": "wine-loo-0-v1", "status": "failed",
              "error": "MemoryError", "learner_params": None}
    report, texts = outputs(write(tmp_path / "run", [failed, *rows], seeds=(0, 1, 2)))
    assert report.frames.grid.superseded == 1 and report.frames.grid.counts["failed"] == 0
    assert "(12 ok, 0 not run); 1 earlier record of a rerun cell is kept" in texts["summary"]
    assert (report.frames.cells["method"] == "loo").sum() == 3


def test_random_as_the_best_is_said_plainly(tmp_path):
    report, _ = outputs(levels(tmp_path / "run", {"loo": (0.60, 9.0), "random": (0.70, 0.0)}))
    line = verdict_lines(report)
    assert "random is the best (0.745): no method measured beats it" in line
    assert "gain over random" not in line and "within one point" not in line


def render(run_dir):
    from valbench.report.html import render_report

    return render_report(run_dir).read_text()


def test_random_within_one_point_is_said_first_and_is_the_cheap_choice(tmp_path):
    report, texts = outputs(levels(tmp_path / "run", {"loo": (0.705, 9.0), "random": (0.70, 0.0)}))
    setting, = report.verdict.settings
    assert setting.choice.random_within and setting.choice.cheapest_within == "random"
    lines = verdict_lines(report)
    assert lines.startswith("* **wine**: random is within one point: no method needed here")
    for name, text in texts.items():
        assert "random (0.745, 0 fits)" in text and "random within one point" in text, name
        assert "random is within one point: no method needed here; best: loo (0.750)" in text, name


def test_a_best_whose_gain_interval_reaches_zero_is_named_with_that_said_beside_it(tmp_path):
    """loo beats random by 2.3 points on average, but by +5, -6 and +8 on the three seeds: named, and flagged."""
    run_dir = write(tmp_path / "run", [record("random", s, 0.70, 0.0) for s in (0, 1, 2)]
                    + [record("loo", s, 0.70 + d, 9.0) for s, d in zip((0, 1, 2), (0.05, -0.06, 0.08))])
    report, texts = outputs(run_dir)
    setting, = report.verdict.settings
    assert setting.choice.best == "loo" and not setting.choice.random_within
    assert setting.gain_unresolved and setting.gain[1] <= 0 < setting.gain[0]
    for name, text in texts.items():
        assert "not separable from random (the gain interval reaches 0)" in text, name
    assert "(3 seeds): the seeds measured cannot tell it from random" in verdict_lines(report)


def test_a_gain_whose_interval_clears_zero_is_not_flagged(tmp_path):
    report, texts = outputs(levels(tmp_path / "run", {"loo": (0.75, 9.0), "random": (0.70, 0.0)}))
    setting, = report.verdict.settings
    assert setting.tested and setting.gain[1] > 0 and not setting.gain_unresolved
    assert not any("not separable from random" in text for text in texts.values())


def test_a_best_no_better_than_the_constant_predictor_is_never_named(tmp_path):
    imbalanced = {"shares": (0.94, 0.06), "constant": 0.94}
    run_dir = write(tmp_path / "run", [record(m, s, 0.94 - 0.05, cost, balanced=0.45, **imbalanced)
                                       for m, cost in (("loo", 5.0), ("random", 0.0)) for s in (0, 1, 2)])
    report, texts = outputs(run_dir)
    setting, = report.verdict.settings
    assert setting.metric == "balanced_accuracy"  # 94 % one class: accuracy would call 0.94 a result
    assert setting.at_constant and setting.recommended is None
    for name, text in texts.items():
        assert "none (no better than the constant majority-class predictor)" in text, name
        assert "balanced accuracy" in text, name
    assert "no winner named" in verdict_lines(report)


@pytest.mark.parametrize("share, metric", [(0.94, "balanced_accuracy"), (0.6, "accuracy")])
def test_the_report_says_which_metric_each_dataset_is_judged_on(tmp_path, share, metric):
    shares = (share, 1 - share)
    run_dir = write(tmp_path / "run", [record(m, s, 0.8, 1.0, balanced=0.7, shares=shares, constant=share)
                                       for m in ("loo", "random") for s in (0, 1)], seeds=(0, 1))
    report = build_report(run_dir)
    assert report.frames.metrics == {"wine": metric}
    expected = 0.7 if metric == "balanced_accuracy" else 0.8
    assert report.frames.budgets.score.min() == pytest.approx(expected + 0.1 * BUDGETS[0])


def test_older_cells_get_their_class_balance_from_the_data_or_say_not_recorded(tmp_path):
    from valbench.datasets.noise import inject_noise
    from valbench.metrics import class_balance
    from valbench.registry import get_dataset, load_installed
    from valbench.report.frame import NO_SHARES, derive_class_balance

    old = {k: v for k, v in record("loo", 1, 0.8, 1.0).items()
           if k not in ("train_class_shares", "constant_accuracy", "constant_balanced_accuracy")}
    unknown = {**old, "dataset": "no-such-dataset", "key": "gone"}
    records, filled = derive_class_balance([old, unknown])
    load_installed()
    expected = class_balance(inject_noise(get_dataset("wine")(seed=1), 0.1, seed=1))
    assert filled == 1 and {k: records[0][k] for k in expected} == expected
    assert "train_class_shares" not in records[1]  # not loadable here: left as recorded
    run_dir = write(tmp_path / "run", [{**unknown, "method": m, "key": m} for m in ("loo", "random")], seeds=(1,))
    report, texts = outputs(run_dir)
    assert report.frames.metric_notes == {"no-such-dataset": NO_SHARES}
    assert all(f"* {NO_SHARES}: no-such-dataset" in text for text in texts.values())
