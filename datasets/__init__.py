"""The suite's datasets, one module per family; each registers its loaders when loaded.

The registry loads them through the ``valbench.datasets`` entry points in ``pyproject.toml``.
"""
