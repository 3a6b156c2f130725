"""The wheel installs one top-level name, ``valbench``, and lives beside Hugging Face ``datasets``.

Slow (a wheel build and a fresh virtual environment with every dependency, 2-4 minutes): deselected from the plain
``pytest`` run, run by ``.ci/run`` with ``pytest -m slow``.
"""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
HF_DATASETS = "datasets==5.2.0"


def build_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), str(ROOT)], check=True)
    (wheel,) = dest.glob("valbench-*.whl")
    return wheel


@pytest.mark.slow
def test_the_wheel_installs_only_valbench_beside_hugging_face_datasets(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist()}
    assert top_level == {"valbench", f"{wheel.name.split('-py3')[0]}.dist-info"}, top_level
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"valbench/cli.py", "valbench/methods/hostcp/solver.py", "valbench/datasets/noise.py"} <= names

    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    python, valbench = env / "bin" / "python", env / "bin" / "valbench"
    subprocess.run([python, "-m", "pip", "install", "-q", str(wheel), HF_DATASETS], check=True)

    listed = subprocess.run([valbench, "list"], capture_output=True, text=True, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "hostcp-fl" in listed.stdout and "breast_cancer" in listed.stdout
    both = subprocess.run([python, "-c", "import datasets; datasets.Dataset; import valbench.datasets.noise; "
                           "print(datasets.__file__)"], capture_output=True, text=True, cwd=tmp_path)
    assert both.returncode == 0, both.stderr
    assert "site-packages/datasets/" in both.stdout  # Hugging Face's, not ours
