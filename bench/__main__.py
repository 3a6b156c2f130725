"""Entry point of ``python -m valbench`` (the same as the ``valbench`` command)."""

import sys

from valbench.cli import main

sys.exit(main())
