"""``python -m daskfuse``: the ``daskfuse`` command line (see :mod:`daskfuse.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
