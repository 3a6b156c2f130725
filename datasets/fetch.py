"""``make data``: copy the real datasets' files from their Debian packages into ``$VALBENCH_DATA``.

``python -m valbench.datasets.fetch [--dir DIR]``. For each file of :data:`~valbench.datasets.datafiles.FILES`
not already present with the right checksum, the package holding it is fetched with ``apt-get download`` (no
install, no root, no dependencies), unpacked with ``dpkg -x`` into a temporary folder, and the file copied in
(written beside its target, verified, then renamed, so an interrupted run leaves no half file behind).
A second run verifies the files, fetches nothing and says so. Exit status: 0 when every file is there and
verified, 1 when a fetch failed, 2 when apt-get or dpkg is missing (docs/datasets.md says how to place the files by
hand).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from valbench.datasets.datafiles import FILES, DataFile, check_file, data_dir, problem


def missing_files(directory: Path) -> dict[str, str]:
    """``{path: what is wrong}`` for every file of the catalogue not present and verified in ``directory``."""
    found = {path: problem(file, directory)[0] for path, file in FILES.items()}
    return {path: wrong for path, wrong in found.items() if wrong is not None}


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def download_package(package: str, work: Path) -> Path:
    """The package's ``.deb`` fetched into ``work`` by ``apt-get download``; when apt knows no such package
    and we are root, ``apt-get update`` once and retry. ``RuntimeError`` with apt's message otherwise."""
    result = run(["apt-get", "download", package], work)
    if result.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
        run(["apt-get", "update"], work)
        result = run(["apt-get", "download", package], work)
    debs = sorted(work.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise RuntimeError(f"`apt-get download {package}` failed: {said[-1] if said else 'no .deb written'} "
                           "(the package lists may need `sudo apt-get update`)")
    return debs[-1]


def install_file(file: DataFile, unpacked: Path, directory: Path) -> None:
    """Copy one file out of an unpacked package into ``directory``, verified before it takes its name."""
    source = unpacked / file.source
    if not source.is_file():
        raise RuntimeError(f"package {file.package} has no {file.source}")
    target = directory / file.path
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    shutil.copyfile(source, partial)
    wrong = check_file(partial, file.sha256)[0]
    if wrong is not None:
        partial.unlink()
        raise RuntimeError(f"{file.path} from package {file.package} {wrong} (the package changed?)")
    partial.replace(target)


def fetch(directory: Path, out=sys.stdout) -> int:
    """Fetch what is missing into ``directory``; the exit status (module docstring)."""
    started = time.perf_counter()
    missing = missing_files(directory)
    if not missing:
        print(f"all {len(FILES)} data files present and verified in {directory}; nothing fetched", file=out)
        return 0
    for path, wrong in missing.items():
        print(f"{path} {wrong.split(':')[0]}", file=out)
    tools = [tool for tool in ("apt-get", "dpkg") if shutil.which(tool) is None]
    if tools:
        print(f"cannot fetch: {' and '.join(tools)} not found. Place the files by hand (docs/datasets.md: Real datasets):",
              file=out)
        for path in missing:
            print(f"  {directory / path}  <-  {FILES[path].origin}", file=out)
        return 2
    packages = sorted({FILES[path].package for path in missing})
    failed = []
    with tempfile.TemporaryDirectory(prefix="valbench-data-") as tmp:
        for package in packages:
            work = Path(tmp) / package
            work.mkdir()
            try:
                deb = download_package(package, work)
                unpacked = work / "unpacked"
                result = run(["dpkg", "-x", str(deb), str(unpacked)], work)
                if result.returncode != 0:
                    raise RuntimeError(f"`dpkg -x {deb.name}` failed: {result.stderr.strip()}")
                for path in (p for p in missing if FILES[p].package == package):
                    install_file(FILES[path], unpacked, directory)
                    print(f"fetched {path} from {deb.name}", file=out)
            except RuntimeError as err:
                failed.append(package)
                print(f"error: {err}", file=out)
    if failed:
        print(f"failed: {', '.join(failed)}; the other files are in {directory}", file=out)
        return 1
    print(f"{len(missing)} file(s) fetched and verified into {directory} in {time.perf_counter() - started:.1f} s",
          file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m valbench.datasets.fetch", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="the data folder (default: $VALBENCH_DATA, else data/)")
    args = parser.parse_args(argv)
    return fetch((args.dir or data_dir()).expanduser().absolute())


if __name__ == "__main__":
    sys.exit(main())
