"""The cluster page's dask-jobqueue snippet builds a valid batch script and passes valid flags to the CLI.

The snippet is read from docs/cluster.md (between the ``cluster-snippet`` markers), so the docs cannot drift.
Only the part before ``cluster.scale`` runs: it starts a scheduler on this machine and submits nothing.
"""

import ast
import re
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("dask_jobqueue")

from valbench.cli import build_parser  # noqa: E402

ROOT = Path(__file__).parents[2]
CLUSTER_PAGE = ROOT / "docs" / "cluster.md"


def snippet() -> str:
    text = CLUSTER_PAGE.read_text()
    block = re.search(r"<!-- cluster-snippet:start -->\s*```python\n(.*?)```\s*<!-- cluster-snippet:end -->",
                      text, re.S)
    assert block, "docs/cluster.md lost its cluster snippet"
    return block.group(1)


def build_cluster(kind: str):
    """Run the snippet up to ``cluster.scale`` with ``kind`` (SLURMCluster or PBSCluster), on loopback."""
    setup = snippet().split("cluster.scale(")[0].replace("SLURMCluster", kind)
    loopback = "scheduler_options={'host': '127.0.0.1', 'dashboard_address': None}, "
    setup = setup.replace(f"{kind}(", f"{kind}({loopback}", 1)
    namespace: dict = {}
    exec(compile(setup, "docs/cluster.md (cluster snippet)", "exec"), namespace)
    return namespace["cluster"]


@pytest.mark.parametrize("kind, directives", [
    ("SLURMCluster", ["#SBATCH -p normal", "#SBATCH --cpus-per-task=8", "#SBATCH -t 04:00:00", "#SBATCH --mem="]),
    ("PBSCluster", ["#PBS -q normal", "#PBS -l select=1:ncpus=8", "#PBS -l walltime=04:00:00"]),
])
def test_the_snippet_builds_a_valid_job_script(kind, directives):
    cluster = build_cluster(kind)
    try:
        script = cluster.job_script()
        address = cluster.scheduler_address
    finally:
        cluster.close()
    for line in directives:
        assert line in script, script
    assert "cd /shared/valbench" in script
    worker = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    assert address in worker and "--nthreads 1" in worker and "--nworkers 8" in worker
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0  # valid shell


def test_the_snippet_passes_valid_flags_to_the_cli():
    call = next(node for node in ast.walk(ast.parse(snippet()))
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "main")
    argv = [element.value if isinstance(element, ast.Constant) else "tcp://127.0.0.1:8786"
            for element in call.args[0].elts]
    args = build_parser().parse_args(argv)
    assert (args.backend, args.scheduler, args.time_limit) == ("dask", "tcp://127.0.0.1:8786", 1800.0)
    assert (ROOT / args.config).exists()  # the config it names is in the repository
