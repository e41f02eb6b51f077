"""``python -m llamahost.cli``: the same as the ``llamahost`` command."""

from __future__ import annotations

import sys

from llamahost.cli import main

if __name__ == "__main__":
    sys.exit(main())
