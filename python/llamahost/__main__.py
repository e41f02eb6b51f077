"""``python -m llamahost``: the command line (the same as ``llamahost``)."""

from llamahost.cli import main

raise SystemExit(main())
