"""A loopback HTTP server for download tests: serves a dict {path: bytes} on 127.0.0.1 (a free port).

    from loopback import LoopbackServer, refused_url

    with LoopbackServer({"/cifar-10-python.tar.gz": archive_bytes}) as server:
        url = server.url("/cifar-10-python.tar.gz")
        server.truncate_next("/cifar-10-python.tar.gz", 1000)  # the next GET sends 1000 bytes, then closes
        ...
        assert server.ranges("/cifar-10-python.tar.gz") == [None, "bytes=1000-"]

or as a fixture: `@pytest.fixture` / `def server(): with LoopbackServer() as s: yield s`.

What it does:
- `GET path` answers 200 with the bytes and a `Content-Length`, or 404 for a path it does not serve.
- `Range: bytes=N-` (or `bytes=N-M`) answers 206 with `Content-Range: bytes N-M/TOTAL`, or 416 with
  `Content-Range: bytes */TOTAL` when N is at or past the end; `server.ignore_range = True` makes it
  answer 200 with the whole file instead, as servers without range support do.
- `truncate_next(path, n_bytes, hang=0.0)`: the next GET of `path` sends the full headers (the whole
  `Content-Length`) but only `n_bytes` of the body, waits `hang` seconds (use it with a client timeout to
  test a stalled transfer; the wait ends early when the server stops) and closes the connection.
- `fail_next(path, status)`: the next GET of `path` answers `status` (e.g. 500, 503).
- `requests`: every GET received, in order, as `Seen(path, range)` (`range` is the Range header or
  None); `count(path=None)` and `ranges(path)` read it.
- `files` may be changed while the server runs. `refused_url()` is a URL on a port where nothing listens.

Each request is answered by its own daemon thread (`ThreadingHTTPServer`); the server stops when the
`with` block ends (or on `stop()`), without waiting for a hanging transfer.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Seen:
    """One GET the server received: its path and its Range header (None without one)."""

    path: str
    range: str | None


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "loopback/1"

    def log_message(self, format, *args):  # quiet
        pass

    def do_GET(self):
        owner: LoopbackServer = self.server.owner
        path = self.path.split("?", 1)[0]
        header = self.headers.get("Range")
        with owner._lock:
            owner.requests.append(Seen(path, header))
            status = owner._failures.pop(path, None)
            cut = owner._cuts.pop(path, None)
            body = owner.files.get(path)
        if status is not None:
            self.send_error(status)
            return
        if body is None:
            self.send_error(404)
            return
        total, start, end = len(body), 0, len(body)
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", header or "")
        if match and not owner.ignore_range:
            start = int(match.group(1))
            if start >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            end = min(total, int(match.group(2)) + 1) if match.group(2) else total
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{total}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "none" if owner.ignore_range else "bytes")
        self.end_headers()
        if cut is None:
            self.wfile.write(body[start:end])
            return
        n_bytes, hang = cut
        self.wfile.write(body[start : min(end, start + n_bytes)])
        self.wfile.flush()
        if hang:
            owner._stopping.wait(hang)
        self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that went away (timeouts, cut transfers) is expected here


class LoopbackServer:
    """Serves `files` ({"/path": bytes}) on http://127.0.0.1:PORT while started (see the module's doc)."""

    def __init__(self, files: dict[str, bytes] | None = None):
        self.files: dict[str, bytes] = dict(files or {})
        self.ignore_range = False
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._cuts: dict[str, tuple[int, float]] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LoopbackServer:
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        """The URL of `path` ("/name" or "name") on this server."""
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def truncate_next(self, path: str, n_bytes: int, hang: float = 0.0) -> None:
        """The next GET of `path` announces the full length, sends `n_bytes` of the body, waits `hang`
        seconds and closes the connection."""
        with self._lock:
            self._cuts["/" + path.lstrip("/")] = (n_bytes, hang)

    def fail_next(self, path: str, status: int) -> None:
        """The next GET of `path` answers HTTP `status`."""
        with self._lock:
            self._failures["/" + path.lstrip("/")] = status

    def count(self, path: str | None = None) -> int:
        """How many GETs arrived (for `path` only, when given)."""
        with self._lock:
            return sum(1 for seen in self.requests if path is None or seen.path == "/" + path.lstrip("/"))

    def ranges(self, path: str) -> list[str | None]:
        """The Range header of each GET of `path`, in order (None for a request without one)."""
        with self._lock:
            return [seen.range for seen in self.requests if seen.path == "/" + path.lstrip("/")]


def refused_url(path: str = "/file") -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{path.lstrip('/')}"
