"""Third-party plugins register through entry points, exactly as the built-ins do: a tiny package, found by its
installed metadata (a ``*.dist-info`` folder with ``entry_points.txt`` on the path), runs from ``valbench run``."""

import ast
import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

from valbench import registry

OPTIONAL_PEERS = {"opendataval", "pydvl", "dattri"}  # entry points whose library the Makefile installs beside the package

PLUGIN_SOURCE = '''
"""A third-party valbench plugin: one method and one dataset."""
import numpy as np
from valbench import Dataset, Valuation, ValuationMethod, register_dataset, register_method


@register_method
class Centrality(ValuationMethod):
    """Points near their class mean are worth more."""
    name = "plugin-centrality"
    params = {}

    def fit(self, data, learner, seed):
        means = np.stack([data.x_train[data.y_train == c].mean(0) if (data.y_train == c).any()
                          else np.zeros(data.n_features) for c in range(data.n_classes)])
        return Valuation(scores=-np.linalg.norm(data.x_train - means[data.y_train], axis=1))


@register_dataset("plugin-lines", "two noisy lines in the plane")
def load_lines(seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    def split(n):
        y = np.arange(n) % 2
        x = np.c_[rng.normal(size=n), 2.0 * y - 1 + 0.3 * rng.normal(size=n)].astype(np.float32)
        return x, y
    (xt, yt), (xv, yv), (xs, ys) = split(80), split(40), split(60)
    return Dataset(name="plugin-lines", x_train=xt, y_train=yt, x_valid=xv, y_valid=yv, x_test=xs, y_test=ys,
                   n_classes=2)
'''


def make_plugin_distribution(site: Path) -> None:
    """Lay out ``vbplugin`` as an installed distribution would be: its module and a dist-info folder whose
    ``entry_points.txt`` names it in both of valbench's groups (what pip writes from the plugin's pyproject)."""
    (site / "vbplugin.py").write_text(PLUGIN_SOURCE)
    info = site / "vbplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vbplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [valbench.methods]
        centrality = vbplugin

        [valbench.datasets]
        lines = vbplugin
        """))


def test_a_plugin_distribution_registers_by_entry_point_and_runs(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_plugin_distribution(site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    valbench = [sys.executable, "-m", "valbench"]

    listed = subprocess.run([*valbench, "list"], env=env, capture_output=True, text=True, check=True).stdout
    assert "plugin-centrality" in listed and "plugin-lines" in listed

    out = tmp_path / "out"
    run = subprocess.run([*valbench, "run", "--methods", "plugin-centrality,random", "--datasets", "plugin-lines",
                          "--seeds", "0", "--noise", "0.1", "--budgets", "0.25", "--no-progress", "--out", str(out),
                          "--run-id", "plugin"],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in (out / "plugin" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in rows) == ["plugin-centrality", "random"]
    assert all(r["status"] == "ok" for r in rows), rows


def test_the_builtins_load_through_the_same_entry_points():
    loaded = {name for group, name in registry._loaded_entry_points if group == "valbench.methods"}
    assert {"random", "hostcp", "kcenter", "facility-location"} <= loaded


def test_every_builtin_entry_point_loads():
    """A built-in module that fails to import (a missing dependency such as cleanlab or apricot) fails here, not as
    a method silently absent from the grid. The optional peers are checked by their own tests (tests/conftest.py's
    require_peer)."""
    builtins = {entry.name for entry in metadata.distribution("valbench").entry_points
                if entry.group in registry.ENTRY_POINT_GROUPS}
    broken = {name: why for name, why in registry.UNAVAILABLE.items() if name in builtins - OPTIONAL_PEERS}
    assert not broken, broken


def package_modules() -> dict[str, Path]:
    """Every module of the installed namespace, by dotted name, from the folders package-dir maps."""
    root = Path(registry.__file__).parents[1]
    modules = {}
    for package, folder in (("valbench", "bench"), ("valbench.methods", "methods"), ("valbench.datasets", "datasets")):
        for path in (root / folder).rglob("*.py"):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``path`` imports anywhere (module level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def test_no_import_cycle_between_the_harness_methods_and_datasets():
    """Tarjan's strongly connected components of the import graph: every component is one module."""
    modules = package_modules()
    graph = {name: imports_of(path, modules) - {name} for name, path in modules.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    assert len(modules) > 40 and not cycles, cycles
    harness = {name for name in modules if not name.startswith(("valbench.methods", "valbench.datasets"))}
    assert not {m for name in harness for m in graph[name] if m.startswith("valbench.methods")}
