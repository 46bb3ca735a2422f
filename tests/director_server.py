"""A stand-in OpenAI-compatible chat endpoint on 127.0.0.1 for the AI director's
tests: it answers well, slowly, with errors or with garbage, as told."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# The longest a slow answer waits: every test's budget is shorter.
SLOW_SEC = 3.0


@dataclass
class ChatServer:
    """What to answer (`mode`, `changes`) and what was asked (`requests`)."""

    mode: str = "good"
    changes: dict[str, Any] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def reply(self, body: dict[str, Any]) -> tuple[int, bytes]:
        """(HTTP status, body bytes) for one request, by mode."""
        content = json.dumps(self.changes)
        if self.mode == "slow":
            time.sleep(SLOW_SEC)
        elif self.mode == "error":
            return 500, b'{"error": "model crashed"}'
        elif self.mode == "unauthorized":
            return 401, b'{"error": "bad key"}'
        elif self.mode == "garbage":
            return 200, b"<html>not an API</html>"
        elif self.mode == "prose":
            content = "Sure! I would make it slower and black and white."
        elif self.mode == "fenced":
            content = f"```json\n{content}\n```"
        elif self.mode == "no_schema" and "response_format" in body:
            return 400, b'{"error": "response_format is not supported"}'
        answer = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        return 200, json.dumps(answer).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ChatServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        state = self.server.state
        state.requests.append(
            {"path": self.path, "headers": dict(self.headers), "body": body}
        )
        status, data = state.reply(body)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting, as it should

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def chat_server(
    mode: str = "good", changes: dict[str, Any] | None = None
) -> Iterator[ChatServer]:
    """Serve on a free port of 127.0.0.1 until the block ends."""
    state = ChatServer(mode, dict(changes or {}))
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = state
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
