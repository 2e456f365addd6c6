"""``python -m prismq_queue``: the ``prismq-queue`` command line."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
