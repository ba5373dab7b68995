"""A small Hugging Face Hub on 127.0.0.1, real enough for huggingface_hub's download code.

It speaks the parts of the Hub protocol fireside uses:

* ``HEAD/GET /{owner}/{repo}/resolve/{revision}/{path}`` answers ``302`` to a "CDN"
  address on another origin (``localhost`` instead of ``127.0.0.1``), with ``ETag``,
  ``X-Linked-Etag`` (the LFS sha256), ``X-Linked-Size`` and ``X-Repo-Commit``; unknown
  repositories and files get ``404`` with the Hub's ``X-Error-Code``;
* ``HEAD/GET /cdn/{id}`` serves the bytes, honouring ``Range: bytes=N-`` with ``206``;
* ``GET /api/models/{owner}/{repo}/tree/{revision}`` lists a repository;
* ``HEAD/GET /plain/{name}`` serves a file at a plain URL (no Hub headers).

Faults for tests: a forced status, a connection cut after N bytes, a stall, a slow
transfer, a trickle of single bytes, a payload that differs from the advertised sha256,
a hostile redirect or ``Content-Disposition``. Every request is logged.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class Served:
    """One file of one repository."""

    repo: str
    path: str
    data: bytes
    commit: str
    lfs: bool = True
    payload: bytes | None = None  # what is really sent, if not ``data``
    size_claim: int | None = None  # what X-Linked-Size says, if not the real size
    cdn_suffix: str = ""  # appended to the CDN address the Hub redirects to
    disposition: str | None = None  # a Content-Disposition header on the CDN's answer

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_oid(self) -> str:
        return hashlib.sha1(self.data).hexdigest()

    @property
    def body(self) -> bytes:
        return self.data if self.payload is None else self.payload

    @property
    def cdn_id(self) -> str:
        return hashlib.sha256(f"{self.repo}/{self.path}".encode()).hexdigest()


@dataclass
class Logged:
    method: str
    path: str
    headers: dict[str, str]

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


@dataclass
class Faults:
    """Misbehaviour, keyed by a substring of the request path."""

    status: dict[str, int] = field(default_factory=dict)  # answer this status
    # drop the connection after N bytes (once)
    cut_after: dict[str, int] = field(default_factory=dict)
    hang_after: dict[str, int] = field(default_factory=dict)  # send N bytes, then stall
    stall: dict[str, float] = field(default_factory=dict)  # wait before answering
    # send the body one byte at a time, this many seconds apart (until stop())
    trickle: dict[str, float] = field(default_factory=dict)
    bytes_per_second: float | None = None  # throttle every body
    # hold every body until this many HEAD requests arrived (proves clients overlap)
    hold_until_heads: int | None = None
    # hold every body until this event is set (a test decides when a transfer starts)
    gate: threading.Event | None = None


class FakeHub:
    """Start with ``start()``; ``endpoint`` is what ``HF_ENDPOINT`` should be."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], Served] = {}
        self.plain: dict[str, bytes] = {}
        self.plain_redirects: dict[str, str] = {}  # /plain/{name} -> a Location header
        self.log: list[Logged] = []
        self.faults = Faults()
        self._lock = threading.Lock()
        self._release = threading.Event()  # ends every stall
        self._server: ThreadingHTTPServer | None = None

    # -- content ---------------------------------------------------------------------
    def add(self, repo: str, path: str, data: bytes, **kwargs: object) -> Served:
        commit = hashlib.sha1(repo.encode()).hexdigest()
        served = Served(repo=repo, path=path, data=data, commit=commit, **kwargs)  # type: ignore[arg-type]
        self.files[(repo, path)] = served
        return served

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            owner = hub

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.endpoint}{path}"

    # -- inspection --------------------------------------------------------------------
    def requests(self, method: str | None = None, contains: str = "") -> list[Logged]:
        with self._lock:
            return [
                r for r in self.log if (method is None or r.method == method) and contains in r.path
            ]

    def record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def fault(self, kind: dict, path: str) -> object | None:
        for key, value in kind.items():
            if key in path:
                return value
        return None


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (as a stalled download's does) is not an error here."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/?]+)")
_RANGE = re.compile(r"bytes=(\d+)-$")


class _Handler(BaseHTTPRequestHandler):
    owner: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # the hub keeps its own log

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    # -- routing -----------------------------------------------------------------------
    def _route(self, *, head: bool) -> None:
        hub = self.owner
        path = unquote(urlsplit(self.path).path)
        hub.record(Logged(self.command, path, {k.lower(): v for k, v in self.headers.items()}))
        if (delay := hub.fault(hub.faults.stall, path)) is not None:
            hub._release.wait(float(delay))  # type: ignore[arg-type]
        if (status := hub.fault(hub.faults.status, path)) is not None:
            return self._empty(int(status))  # type: ignore[call-overload]
        if m := _RESOLVE.match(path):
            return self._resolve(m["repo"], m["path"], head=head)
        if m := _TREE.match(path):
            return self._tree(m["repo"])
        if path.startswith("/cdn/"):
            for served in hub.files.values():
                if served.cdn_id == path[5:].split("/")[0]:
                    extra = (
                        {"Content-Disposition": served.disposition} if served.disposition else {}
                    )
                    return self._body(
                        served.body, etag=served.sha256, head=head, key=path, extra=extra
                    )
            return self._empty(404)
        if path.startswith("/plain/") and path[7:] in hub.plain_redirects:
            return self._empty(302, {"Location": hub.plain_redirects[path[7:]]})
        if path.startswith("/plain/"):
            data = hub.plain.get(path[7:])
            if data is None:
                return self._empty(404)
            return self._body(data, etag=hashlib.md5(data).hexdigest(), head=head, key=path)
        return self._empty(404)

    def _empty(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _resolve(self, repo: str, path: str, *, head: bool) -> None:
        hub = self.owner
        if not any(r == repo for r, _ in hub.files):
            return self._empty(404, {"X-Error-Code": "RepoNotFound"})
        served = hub.files.get((repo, path))
        commit = hashlib.sha1(repo.encode()).hexdigest()
        if served is None:
            return self._empty(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
        size = served.size_claim if served.size_claim is not None else len(served.data)
        headers = {
            "X-Repo-Commit": served.commit,
            "ETag": f'"{served.git_oid}"',
            "Location": f"http://localhost:{hub.port}/cdn/{served.cdn_id}{served.cdn_suffix}",
        }
        if served.lfs:
            headers["X-Linked-Etag"] = f'"{served.sha256}"'
            headers["X-Linked-Size"] = str(size)
        else:
            # a small file kept in git: no LFS sha256, served directly (no redirect)
            headers.pop("Location")
            headers.pop("ETag")
            return self._body(served.body, etag=served.git_oid, head=head, key=path, extra=headers)
        self._empty(302, headers)

    def _tree(self, repo: str) -> None:
        items = []
        for (r, p), served in self.owner.files.items():
            if r != repo:
                continue
            item = {"type": "file", "oid": served.git_oid, "size": len(served.data), "path": p}
            if served.lfs:
                item["lfs"] = {"oid": served.sha256, "size": len(served.data), "pointerSize": 134}
            items.append(item)
        if not items:
            return self._empty(404, {"X-Error-Code": "RepoNotFound"})
        body = json.dumps(items).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(
        self,
        data: bytes,
        *,
        etag: str,
        head: bool,
        key: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        hub = self.owner
        start = 0
        if (rng := self.headers.get("Range")) and (m := _RANGE.match(rng.strip())):
            start = int(m.group(1))
            if start >= len(data):
                return self._empty(416, {"Content-Range": f"bytes */{len(data)}"})
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if head:
            return
        if hub.faults.hold_until_heads is not None:
            deadline = time.monotonic() + 30
            while len(hub.requests("HEAD")) < hub.faults.hold_until_heads:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        if hub.faults.gate is not None:
            hub.faults.gate.wait(60)
        body = data[start:]
        cut = hub.fault(hub.faults.cut_after, key)
        if cut is not None:
            del hub.faults.cut_after[next(k for k in hub.faults.cut_after if k in key)]
            self._send(body[: int(cut)])  # type: ignore[call-overload]
            self.close_connection = True
            self.connection.close()
            return
        interval = hub.fault(hub.faults.trickle, key)
        if interval is not None:
            for i in range(len(body)):
                if hub._release.wait(float(interval)):  # type: ignore[arg-type]
                    break
                self._send(body[i : i + 1])
                if self.close_connection:
                    break  # the client went away
            self.close_connection = True
            return
        hang = hub.fault(hub.faults.hang_after, key)
        if hang is not None:
            self._send(body[: int(hang)])  # type: ignore[call-overload]
            hub._release.wait(60)
            self.close_connection = True
            return
        self._send(body)

    def _send(self, body: bytes) -> None:
        rate = self.owner.faults.bytes_per_second
        step = 64 * 1024
        try:
            for i in range(0, len(body), step):
                self.wfile.write(body[i : i + step])
                if rate:
                    time.sleep(step / rate)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
