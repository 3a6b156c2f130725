"""The harness's error for bad input: in a module of its own so that every layer (protocol, params, datasets)
can raise it without importing the others."""


class DataError(ValueError):
    """A dataset, a split or a harness argument is malformed; the message names what and why."""
