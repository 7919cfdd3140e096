"""A real HTTP server in a thread for the transport tests: Range requests, cut-off bodies, a fake hub API."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Served:
    """What the server holds and what it saw. ``cut`` makes the next GET of a path stop after that many bytes."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def gets(self, path: str) -> list[str | None]:
        """The Range header of every GET of ``path`` (None when it asked for the whole file)."""
        with self.lock:
            return [r for m, p, r in self.requests if m == "GET" and p == path]


def _handler(served: Served):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _lookup(self) -> bytes | None:
            path = self.path.split("?", 1)[0]
            return served.files.get(path)

        def _headers(self, body: bytes, status: int, length: int, extra: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            etag = hashlib.sha256(body).hexdigest()
            # what the hub sends for a file: its commit and a (linked) etag / size
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{etag}"')
            self.send_header("X-Linked-Etag", f'"{etag}"')
            self.send_header("X-Linked-Size", str(len(body)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()

        def do_HEAD(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            with served.lock:
                served.requests.append(("HEAD", path, self.headers.get("Range")))
            body = self._lookup()
            if body is None:
                self.send_error(404)
                return
            self._headers(body, 200, len(body), {})

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            wanted = self.headers.get("Range")
            with served.lock:
                served.requests.append(("GET", path, wanted))
                cut = served.cut.pop(path, None)
            body = self._lookup()
            if body is None:
                self.send_error(404)
                return
            start = 0
            status = 200
            if wanted and wanted.startswith("bytes="):
                start = int(wanted[len("bytes=") :].split("-", 1)[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            part = body[start:]
            extra = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"} if status == 206 else {}
            self._headers(body, status, len(part), extra)
            if cut is not None:  # announce the whole body, send a piece, hang up
                self.wfile.write(part[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(part)

    return Handler


class LocalServer:
    def __init__(self) -> None:
        self.served = Served()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.served))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
