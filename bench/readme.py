"""Copy a run's headline table into the README between its reference-table markers (``make reference-report``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bench.results import load_records
from bench.summary import summary_table

START, END = "<!-- reference-table:start -->", "<!-- reference-table:end -->"


def update_readme(run_dir: Path, readme: Path) -> None:
    """Replace the text between the markers with the run's summary table (markdown)."""
    table = summary_table(load_records(run_dir)).reset_index().to_markdown(index=False)
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} lacks the markers {START} ... {END}")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: f"{START}\n{table}\n{END}", text))


if __name__ == "__main__":
    update_readme(Path(sys.argv[1]), Path(sys.argv[2]))
