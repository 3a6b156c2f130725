"""The real datasets' files: where they live, where they come from, and their checksums.

Nothing is downloaded at run time. ``make data`` (:mod:`valbench.datasets.fetch`) copies the files from three
Debian packages into ``$VALBENCH_DATA`` (default: ``data/`` in the checkout, git-ignored); the loaders read
them from there through :func:`read_verified`, which refuses a missing or altered file with a
:class:`~valbench.protocol.DataError` (a usage error: exit 2 before any cell runs) naming the path and
``make data``.

A checksum is the SHA-256 of a file's *uncompressed* content: the same data compressed differently (Debian
recompresses Fashion-MNIST's ``.gz`` files; CRAN's ``.rda`` files are xz or bzip2) passes, so files placed by
hand from the original sources verify too.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
from dataclasses import dataclass
from pathlib import Path

from valbench.protocol import DataError

REPO_DATA = Path(__file__).resolve().parents[1] / "data"
HOW_TO_FETCH = "run `make data` (docs/datasets.md: Real datasets)"


@dataclass(frozen=True)
class DataFile:
    """One file of ``$VALBENCH_DATA``: its path there, the Debian package and path it is copied from, the
    SHA-256 of its uncompressed content, and where to get it by hand."""

    path: str
    package: str
    source: str
    sha256: str
    origin: str


FASHION = "usr/share/datasets/fashion-mnist/"
MLBENCH = "usr/lib/R/site-library/mlbench/data/"
KERNLAB = "usr/lib/R/site-library/kernlab/data/"
ZALANDO = "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"
CRAN_MLBENCH = "data/ of the CRAN package mlbench 2.1-3 (https://cran.r-project.org/package=mlbench)"
CRAN_KERNLAB = "data/ of the CRAN package kernlab 0.9-32 (https://cran.r-project.org/package=kernlab)"


def _fashion(name: str, sha256: str) -> DataFile:
    return DataFile(f"fashion-mnist/{name}", "dataset-fashion-mnist", FASHION + name, sha256, ZALANDO + name)


def _rda(package: str, name: str, sha256: str) -> DataFile:
    folder, origin = (MLBENCH, CRAN_MLBENCH) if package == "mlbench" else (KERNLAB, CRAN_KERNLAB)
    return DataFile(f"{package}/{name}", f"r-cran-{package}", folder + name, sha256, origin)


FILES: dict[str, DataFile] = {f.path: f for f in [
    _fashion("train-images-idx3-ubyte.gz", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    _fashion("train-labels-idx1-ubyte.gz", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    _fashion("t10k-images-idx3-ubyte.gz", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    _fashion("t10k-labels-idx1-ubyte.gz", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    _rda("mlbench", "LetterRecognition.rda", "92844a4562cfe66720dea2b19f30cf83c155dec85c96a20f041f3e4e6db01c61"),
    _rda("mlbench", "Shuttle.rda", "f9d3d58df57332c5f7781162081c4a1169daa24afafc3b63fb729fefd81252aa"),
    _rda("mlbench", "Satellite.rda", "0d19410b263fbb562334e10aa48d045db6cdec88ca886a42445f74a8671d1b22"),
    _rda("mlbench", "DNA.rda", "2b15a9b2d1dfb0c08f108668e2ac65c7720499a022636140eccae92d4c06b291"),
    _rda("kernlab", "spam.rda", "7f6ee50cd842dcf923ae023f58c3ccb8ce6e89d1a70dd4464e77350312bcf773"),
    _rda("kernlab", "ticdata.rda", "15d8cb4f278c5be17bec79b9118732e23deeea6070158068a14af49ddb118e2f"),
]}


def data_dir() -> Path:
    """``$VALBENCH_DATA`` when set (read at each call, so a test or a user can point it elsewhere), else
    ``data/`` in the checkout."""
    return Path(os.environ.get("VALBENCH_DATA") or REPO_DATA).expanduser()


def uncompressed(raw: bytes) -> bytes:
    """``raw`` decompressed when it starts with a gzip, bzip2 or xz header, else ``raw`` itself."""
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    return raw


def content_sha256(path: Path) -> tuple[str, bytes]:
    """The SHA-256 of the file's uncompressed content, and that content (``OSError``/``EOFError``/
    ``lzma.LZMAError``... on a truncated or unreadable file)."""
    content = uncompressed(path.read_bytes())
    return hashlib.sha256(content).hexdigest(), content


def check_file(path: Path, sha256: str) -> tuple[str | None, bytes | None]:
    """``(None, content)`` when ``path`` exists and its content has the checksum, else ``(what is wrong, None)``."""
    if not path.is_file():
        return f"is missing: {path}", None
    try:
        digest, content = content_sha256(path)
    except Exception as err:  # noqa: BLE001 - any failure to read or decompress is a corrupt file
        return f"cannot be read ({type(err).__name__}: {err}): {path}", None
    if digest != sha256:
        return f"has the wrong checksum (sha256 of its content {digest[:12]}..., expected {sha256[:12]}...): " \
               f"{path}", None
    return None, content


def problem(file: DataFile, directory: Path | None = None) -> tuple[str | None, bytes | None]:
    """:func:`check_file` for a catalogue file in ``directory`` (default ``$VALBENCH_DATA``)."""
    return check_file((directory or data_dir()) / file.path, file.sha256)


def read_verified(dataset: str, path: str, directory: str | Path | None = None) -> bytes:
    """The uncompressed content of ``directory/path`` (default ``$VALBENCH_DATA``) after checking its SHA-256;
    a missing or corrupt file is a :class:`DataError` naming the path and ``make data``."""
    file = FILES[path]
    wrong, content = problem(file, None if directory is None else Path(directory))
    if wrong is not None:
        raise DataError(f"dataset {dataset!r}: the file {file.path} {wrong}; {HOW_TO_FETCH}, or set VALBENCH_DATA "
                        "to the folder that holds it")
    return content  # type: ignore[return-value]
