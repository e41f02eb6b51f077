"""``llamahost serve``: start the HTTP server (Ollama's API) at LLAMAHOST_HOST.

Only this command imports the server (Starlette, uvicorn, pydantic), so no other
command pays for it.
"""

from __future__ import annotations

import argparse

from llamahost.store.model_store import ModelStore


def serve_command(args: argparse.Namespace, store: ModelStore) -> int:
    """Serve until SIGTERM or Ctrl-C; the LLAMAHOST_* variables configure it."""
    from llamahost.server.app import ServerConfig
    from llamahost.server.serve import serve_forever

    return serve_forever(ServerConfig.from_env())
