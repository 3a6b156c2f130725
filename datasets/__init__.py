"""The suite's datasets; importing this package registers every loader."""

from datasets import images, synthetic, table, tabular  # noqa: F401  (imported for their registrations)
