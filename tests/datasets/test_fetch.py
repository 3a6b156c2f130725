"""`make data` (valbench.datasets.fetch) against packages built here with dpkg-deb and a stand-in `apt-get` that
serves them: the real `dpkg -x` unpacks them. Fetches what is missing or altered, then nothing."""

import dataclasses
import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from valbench.datasets import datafiles, fetch

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("dpkg") is None,
                                reason="needs dpkg and dpkg-deb")


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """Three small .deb files holding a stand-in for every catalogue file (checksums pointed at them), and an
    `apt-get` first on PATH whose `download NAME` copies NAME's .deb into the working folder (and logs it)."""
    debs, log = tmp_path / "mirror", tmp_path / "apt.log"
    debs.mkdir()
    for package in {f.package for f in datafiles.FILES.values()}:
        root = tmp_path / "build" / package
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN/control").write_text(f"Package: {package}\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: test <t@example.org>\nDescription: test data\n")
        for path, file in datafiles.FILES.items():
            if file.package == package:
                target = root / file.source
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(f"content of {path}".encode())
                monkeypatch.setitem(datafiles.FILES, path, dataclasses.replace(
                    file, sha256=hashlib.sha256(f"content of {path}".encode()).hexdigest()))
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root),
                        str(debs / f"{package}_1.0_all.deb")], check=True, capture_output=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(
        f'#!/bin/sh\necho "$@" >> {log}\n[ "$1" = download ] || exit 0\n'
        f'cp {debs}/"$2"_*.deb . 2>/dev/null || {{ echo "E: Unable to locate package $2" >&2; exit 100; }}\n')
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(shutil.which('dpkg')).parent}")
    return log


def fetch_into(directory):
    out = io.StringIO()
    return fetch.fetch(directory, out=out), out.getvalue()


def test_fetches_every_file_then_nothing(tmp_path, mirror):
    status, said = fetch_into(tmp_path / "data")
    assert status == 0 and said.count("\nfetched ") == 10 and "10 file(s) fetched and verified" in said
    assert (tmp_path / "data/mlbench/Shuttle.rda").read_bytes() == b"content of mlbench/Shuttle.rda"
    assert not list((tmp_path / "data").rglob("*.part"))
    calls = mirror.read_text()
    status, said = fetch_into(tmp_path / "data")
    assert status == 0 and "all 10 data files present and verified" in said and "nothing fetched" in said
    assert mirror.read_text() == calls  # apt-get not called again


def test_refetches_only_the_package_of_an_altered_file(tmp_path, mirror):
    fetch_into(tmp_path / "data")
    (tmp_path / "data/kernlab/spam.rda").write_bytes(b"altered")
    mirror.write_text("")
    status, said = fetch_into(tmp_path / "data")
    assert status == 0 and "kernlab/spam.rda has the wrong checksum" in said
    assert said.count("\nfetched ") == 1 and mirror.read_text() == "download r-cran-kernlab\n"
    assert fetch.missing_files(tmp_path / "data") == {}


def test_a_package_whose_file_changed_is_an_error_and_leaves_nothing_behind(tmp_path, mirror, monkeypatch):
    path = "mlbench/DNA.rda"
    monkeypatch.setitem(datafiles.FILES, path, dataclasses.replace(datafiles.FILES[path], sha256="0" * 64))
    status, said = fetch_into(tmp_path / "data")
    assert status == 1 and "mlbench/DNA.rda from package r-cran-mlbench has the wrong checksum" in said
    assert "failed: r-cran-mlbench" in said and not (tmp_path / "data" / path).exists()
    assert not list((tmp_path / "data").rglob("*.part"))
    assert (tmp_path / "data/kernlab/spam.rda").exists()  # the other packages still came


def test_unknown_package_names_apt(tmp_path, mirror, monkeypatch):
    path = "kernlab/spam.rda"
    monkeypatch.setitem(datafiles.FILES, path, dataclasses.replace(datafiles.FILES[path], package="r-cran-nope"))
    status, said = fetch_into(tmp_path / "data")
    assert status == 1 and "`apt-get download r-cran-nope` failed: E: Unable to locate package r-cran-nope" in said


def test_without_apt_it_says_where_to_get_each_file_by_hand(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.shutil, "which", lambda tool: None)
    status, said = fetch_into(tmp_path / "data")
    assert status == 2 and "apt-get and dpkg not found" in said
    assert f"{tmp_path}/data/fashion-mnist/train-images-idx3-ubyte.gz  <-  https://github.com/zalandoresearch" in said
    assert "mlbench/Shuttle.rda  <-  data/ of the CRAN package mlbench 2.1-3" in said
