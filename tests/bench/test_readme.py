"""``make reference-report`` copies the run's table and verdict into the README between their markers."""

from valbench.report.readme import END, START, VERDICT_END, VERDICT_START, update_readme
from tests.bench.report.test_html import DATASETS, METHODS, ok_record, write_run


def test_table_and_verdict_land_between_their_markers(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run(run_dir, [ok_record(d, m, s, n) for d, n in DATASETS.items() for m in METHODS for s in (0, 1)])
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{VERDICT_START}\nold verdict\n{VERDICT_END}\n\n{START}\nold table\n{END}\nrest\n")
    update_readme(run_dir, readme)
    text = readme.read_text()
    verdict = text.split(VERDICT_START)[1].split(VERDICT_END)[0]
    table = text.split(START)[1].split(END)[0]
    assert "old" not in verdict + table and text.startswith("intro\n") and text.endswith("rest\n")
    assert [line.split("**")[1] for line in verdict.strip().splitlines()] == sorted(DATASETS)  # no config order: by name
    assert "area (95% CI)" in table and "2-means F1" in table
    assert sum(line.startswith("| wine ") for line in table.splitlines()) == len(METHODS)
