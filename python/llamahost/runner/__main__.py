"""``python -m llamahost.runner``: the same as ``llamahost runner``."""

from llamahost.runner.main import main

raise SystemExit(main())
