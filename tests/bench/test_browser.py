"""The report in a real browser: headless Chromium loads index.html, every image decodes, the page is not blank.

Skipped, with the reason, where no Chromium is installed; a failure in CI (tests/conftest.py), where ``.ci/run``
installs the Debian package ``chromium`` and stops if it cannot.
"""

import re
import shutil
import subprocess

import matplotlib.image
import pytest

from valbench.report.html import render_report
from tests.bench.report.test_html import DATASETS, METHODS, ok_record, write_run

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
# marks each image with whether it decoded, and the body with the length of its visible text
PROBE = ("<script>window.addEventListener('load', () => { for (const img of document.images) {"
         " img.setAttribute('data-probe', img.complete && img.naturalWidth > 0 ? 'loaded' : 'broken'); }"
         " document.body.setAttribute('data-text-length', document.body.innerText.trim().length); });</script>")


@pytest.fixture(scope="module")
def browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless Chromium here (apt-get install -y chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("browser-run")
    write_run(run_dir, [ok_record(d, m, s, n) for d, n in DATASETS.items() for m in METHODS for s in (0, 1)])
    return render_report(run_dir)


def chromium(browser, profile, *args, timeout=90):
    profile.mkdir()
    done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_every_image_loads_in_chromium(browser, index, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(index.read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium(browser, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    states = re.findall(r'data-probe="(\w+)"', dom)
    assert len(states) == index.read_text().count("<img "), "every image reports whether it decoded"
    assert len(states) >= 6 and set(states) == {"loaded"}, states
    text_length = int(re.search(r'data-text-length="(\d+)"', dom).group(1))
    assert text_length > 2000  # the verdict, tables and captions are rendered text


def test_the_first_screen_is_not_blank(browser, index, tmp_path):
    shot = tmp_path / "shot.png"
    chromium(browser, tmp_path / "profile", "--window-size=1280,1600", f"--screenshot={shot}", index.as_uri())
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, 1280)
    assert pixels.var() > 1e-3 and (pixels < 0.5).mean() > 0.005  # text and figures, not an empty white page
