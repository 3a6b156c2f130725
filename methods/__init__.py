"""The suite's valuation methods, one module per method or family.

Nothing is imported here: each module registers its classes when loaded, and the registry loads them
through the ``valbench.methods`` entry points in ``pyproject.toml``, exactly as it loads a plugin's.
"""
