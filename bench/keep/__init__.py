"""``valbench select``: which of *your* rows to keep, and which look mislabelled, measured on your data.

:func:`select` (also ``valbench.select``) runs the steps; the CLI is :mod:`valbench.keep.cli`.
"""

from valbench.keep.api import Selection, select

__all__ = ["Selection", "select"]
