"""The IDX format of (Fashion-)MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/), read without a download.

A file is two zero bytes, a type code, the number of dimensions ``d``, then ``d`` big-endian uint32 sizes and
the values in C order (big-endian for multi-byte types).
"""

from __future__ import annotations

import numpy as np

IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def parse_idx(content: bytes) -> np.ndarray:
    """The array stored in an (uncompressed) IDX file; ``ValueError`` names what is malformed."""
    if len(content) < 4 or content[:2] != b"\0\0" or content[2] not in IDX_TYPES:
        raise ValueError(f"not an IDX file (header {content[:4]!r})")
    dtype, ndim = IDX_TYPES[content[2]], content[3]
    shape = tuple(int(s) for s in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if len(content) != expected:
        raise ValueError(f"IDX shape {shape} of {dtype} needs {expected} bytes, the file has {len(content)}")
    return np.frombuffer(content, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(array: np.ndarray) -> bytes:
    """``array`` as IDX bytes (the inverse of :func:`parse_idx`; the tests write fixtures with it)."""
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}
    array = np.asarray(array)
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX has no type for {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(IDX_TYPES[code]).tobytes()
