"""The README is a short manual with the pages of docs/ behind it: its hand-written part stays short, the
markers ``make reference-report`` fills are all there, and every local link in the README and docs/ resolves."""

import re
from pathlib import Path

from valbench.report.readme import markers

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
MARKERS = [markers(block, run) for run in ("reference", "real") for block in ("answer", "verdict")]
MARKERS += [markers("detection")] + [markers("answer", run) for run in ("real-embed", "real-embed-mlp", "real-cnn")]
MAX_MANUAL_LINES = 250
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def manual_text() -> str:
    """The README without the generated text between its markers (a run's tables are as long as the grid)."""
    text = README.read_text()
    for start, end in MARKERS:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), "", text, flags=re.S)
    return text


def test_the_readme_keeps_every_generated_block():
    text = README.read_text()
    for start, end in MARKERS:
        assert text.count(start) == 1 and text.count(end) == 1 and text.index(start) < text.index(end), start


def test_the_readme_is_a_short_manual():
    assert len(manual_text().splitlines()) <= MAX_MANUAL_LINES


def test_every_local_link_resolves():
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    missing = []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if "://" in target:
                continue
            path = (page.parent / target).resolve()
            if not path.exists():
                missing.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not missing, missing


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / target).resolve() for target in LINK.findall(README.read_text())}
    unlinked = [p.name for p in (ROOT / "docs").glob("*.md") if p.resolve() not in linked]
    assert not unlinked, unlinked
