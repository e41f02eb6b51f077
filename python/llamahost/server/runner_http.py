"""A lean HTTP/1.1 exchange with a runner over its Unix socket, for generation streams.

Every generated token crosses the server as one NDJSON line, so this path is measured in
microseconds per line. httpx (over httpcore, h11 and anyio) spent about 0.2 ms of the
server's CPU per line here, and on a machine whose cores are all decoding that time comes
straight out of generation speed (``benchmarks/bench_server.py``). The runner is our own
program, speaking a known subset of HTTP/1.1 (uvicorn: a status line, headers, then a
chunked or sized body), so a direct asyncio stream does the job: one request per
connection (``Connection: close``), the body read chunk by chunk as it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

#: The longest status line or header block a runner may send.
MAX_HEAD_BYTES = 64 * 1024


class RunnerHTTPError(ConnectionError):
    """The connection to the runner broke, or it answered something that is not HTTP."""


class RunnerResponse:
    """One answer from a runner: its status, then its body read as it comes."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        headers: dict[str, str],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.status = status
        self.headers = headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes, in the pieces the runner wrote them."""
        reader = self._reader
        try:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size_line = await reader.readline()
                    if not size_line.endswith(b"\n"):
                        raise RunnerHTTPError("the runner closed the connection mid-answer")
                    size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        await reader.readline()  # the empty trailer
                        return
                    data = await reader.readexactly(size + 2)
                    yield data[:-2]
            elif "content-length" in self.headers:
                yield await reader.readexactly(int(self.headers["content-length"]))
            else:
                while data := await reader.read(65536):
                    yield data
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            raise RunnerHTTPError(f"the runner's answer broke off: {exc}") from None

    async def lines(self) -> AsyncIterator[bytes]:
        """The body's non-empty lines (NDJSON), as they arrive."""
        pending = b""
        async for chunk in self.chunks():
            pending += chunk
            if b"\n" not in chunk:
                continue
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line:
                    yield line
        if pending.strip():
            yield pending

    async def json(self) -> dict[str, Any]:
        """The whole body as a JSON object ({"error": text} if it is not one)."""
        body = b"".join([chunk async for chunk in self.chunks()])
        try:
            value = json.loads(body)
        except ValueError:
            return {"error": body.decode("utf-8", errors="replace")[:2000]}
        return value if isinstance(value, dict) else {"value": value}

    async def aclose(self) -> None:
        """Close the connection; a runner takes that as the request's cancellation."""
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


async def post(socket_path: str, secret: str, path: str, body: dict[str, Any]) -> RunnerResponse:
    """Send ``POST path`` with a JSON `body`; return once the status and headers are in."""
    try:
        reader, writer = await asyncio.open_unix_connection(socket_path, limit=MAX_HEAD_BYTES)
    except OSError as exc:
        raise RunnerHTTPError(f"cannot connect to the runner: {exc}") from None
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: runner\r\nAuthorization: Bearer {secret}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    try:
        writer.write(head + payload)
        await writer.drain()
        block = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
        writer.close()
        raise RunnerHTTPError(f"the runner did not answer: {exc}") from None
    status_line, *header_lines = block.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        writer.close()
        raise RunnerHTTPError(f"the runner answered {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return RunnerResponse(reader, writer, int(parts[1]), headers)
