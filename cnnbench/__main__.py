"""``python -m cnnbench``: the ``cnnbench`` command, for environments where its script is not on the PATH."""

import sys

from cnnbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
