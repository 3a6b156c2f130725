"""``make reference-report`` copies the run's answer and verdict into the README between their markers."""

from valbench.report.readme import ANSWER_END, ANSWER_START, VERDICT_END, VERDICT_START, markers, update_readme
from tests.bench.report.test_html import DATASETS, METHODS, ok_record, write_run


def test_answer_and_verdict_land_between_their_markers(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run(run_dir, [ok_record(d, m, s, n) for d, n in DATASETS.items() for m in METHODS for s in (0, 1)])
    readme = tmp_path / "README.md"
    real_start, real_end = markers("answer", "real")
    readme.write_text(f"intro\n{VERDICT_START}\nold verdict\n{VERDICT_END}\n\n{ANSWER_START}\nold answer\n{ANSWER_END}\n"
                      f"{real_start}\nthe real run's\n{real_end}\nrest\n")
    update_readme(run_dir, readme)
    text = readme.read_text()
    verdict = text.split(VERDICT_START)[1].split(VERDICT_END)[0]
    answer = text.split(ANSWER_START)[1].split(ANSWER_END)[0]
    assert "old" not in verdict + answer and text.startswith("intro\n") and text.endswith("rest\n")
    assert "the real run's" in text  # another run's block is left alone
    assert [line.split("**")[1] for line in verdict.strip().splitlines()] == sorted(DATASETS)  # no config order: by name
    assert all(f"| {d} " in answer for d in DATASETS)  # one answer row per dataset


def test_a_named_block_is_filled_and_the_answer_markers_are_required(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run(run_dir, [ok_record(d, m, s, n) for d, n in DATASETS.items() for m in METHODS for s in (0, 1)])
    readme = tmp_path / "README.md"
    start, end = markers("answer", "real")
    readme.write_text(f"{start}\n{end}\n")
    update_readme(run_dir, readme, "real")
    assert all(f"| {d} " in readme.read_text() for d in DATASETS)
    readme.write_text("no markers\n")
    try:
        update_readme(run_dir, readme)
    except SystemExit as err:
        assert "reference-answer:start" in str(err)
    else:
        raise AssertionError("a README without the answer markers must be refused")
