"""A missing or altered data file is a usage error naming the path and `make data`, raised before any cell."""

import gzip
import hashlib
import lzma

import numpy as np
import pytest

from valbench.cli import main
from valbench.datasets.datafiles import FILES, check_file, read_verified
from valbench.protocol import DataError
from valbench.registry import get_dataset

from .fixtures import letter_like, write_file, write_rda


def test_checksums_are_of_the_uncompressed_content(tmp_path):
    """gzip, xz or no compression: one content, one checksum (Debian recompressed Zalando's .gz files)."""
    content = b"the same bytes" * 100
    sha = hashlib.sha256(content).hexdigest()
    for name, raw in (("a.gz", gzip.compress(content)), ("b.xz", lzma.compress(content)), ("c", content)):
        (tmp_path / name).write_bytes(raw)
        assert check_file(tmp_path / name, sha) == (None, content)


def test_every_catalogue_file_has_a_package_an_origin_and_a_sha256():
    assert len(FILES) == 10
    for path, file in FILES.items():
        assert file.path == path and file.source.endswith(path.split("/")[1]) and len(file.sha256) == 64
        assert file.package in {"dataset-fashion-mnist", "r-cran-mlbench", "r-cran-kernlab"} and file.origin


def test_altered_and_unreadable_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("VALBENCH_DATA", str(tmp_path))
    write_rda(tmp_path, "mlbench/Satellite.rda", "Satellite", letter_like(np.random.default_rng(0), "classes"),
              monkeypatch)
    assert get_dataset("satellite")(seed=0).n_classes == 3
    target = tmp_path / "mlbench/Satellite.rda"
    good = target.read_bytes()
    target.write_bytes(gzip.compress(gzip.decompress(good)[:-1] + b"?"))  # another content, well compressed
    with pytest.raises(DataError, match=r"dataset 'satellite': the file mlbench/Satellite.rda has the wrong "
                                        r"checksum .*; run `make data`"):
        read_verified("satellite", "mlbench/Satellite.rda")
    target.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(DataError, match=r"cannot be read \(EOFError.*run `make data`"):
        read_verified("satellite", "mlbench/Satellite.rda")


def test_missing_file_exits_2_before_any_cell_naming_make_data_and_the_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VALBENCH_DATA", str(tmp_path / "data"))
    out = tmp_path / "runs"
    assert main(["run", "--methods", "random", "--datasets", "wine,shuttle", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"dataset 'shuttle': the file mlbench/Shuttle.rda is missing: {tmp_path}/data/mlbench/Shuttle.rda" in err
    assert "run `make data`" in err and "Traceback" not in err
    assert not out.exists()  # refused before a run directory was made


def test_corrupt_file_exits_2_through_valbench_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VALBENCH_DATA", str(tmp_path))
    write_file(tmp_path, "kernlab/spam.rda", b"placeholder", monkeypatch)
    (tmp_path / "kernlab/spam.rda").write_bytes(b"placeholder, altered")
    assert main(["run", "--methods", "random", "--datasets", "spam", "--out", str(tmp_path / "runs")]) == 2
    assert "kernlab/spam.rda has the wrong checksum" in capsys.readouterr().err
