"""A loopback stand-in for the Hugging Face Hub, serving repos from tests/data/hub/<org>/<name>/.

It answers what huggingface_hub asks when it downloads files and reads safetensors headers:

- ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` with ``Range`` (206 + Content-Range),
  ``X-Repo-Commit``, ``ETag``, ``Content-Length``, and ``X-Error-Code`` on errors
  (``RepoNotFound``, ``GatedRepo``, ``RevisionNotFound``, ``EntryNotFound``), as
  huggingface_hub.utils.hf_raise_for_status reads them;
- ``GET /api/models/{repo_id}[/revision/{rev}]``: model info with its ``siblings``;
- ``GET /api/models/{repo_id}/safetensors-metadata/{index}``: every shard header in one
  response, as ``HfApi.get_sharded_safetensors_metadata`` expects (default branch only).

Safetensors fixtures hold only the 8-byte length and the header; the server reports the
virtual file size (header + the body the offsets describe) and serves zeros for body bytes,
so a reader that strays into tensor data is counted. A repo's optional ``_repo.json`` sets
``{"gated": true}`` (401 GatedRepo without ``Authorization: Bearer TEST_TOKEN``) and extra
``{"revisions": {"v1.0": "<sha>"}}``. Every request and the body bytes sent are recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

DATA = Path(__file__).resolve().parent / "data" / "hub"
TEST_TOKEN = "hf_testtoken_0123456789abcdefSENTINEL"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class Request:
    method: str
    path: str
    status: int
    range: str | None
    body_bytes: int


@dataclass
class HubStandIn:
    """Handle on a running stand-in: its endpoint and what it served."""

    endpoint: str
    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def bytes_served(self) -> int:
        with self.lock:
            return sum(r.body_bytes for r in self.requests)

    @property
    def request_count(self) -> int:
        with self.lock:
            return len(self.requests)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def commit_of(repo_id: str) -> str:
    return hashlib.sha1(repo_id.encode()).hexdigest()


def virtual_size(path: Path) -> int:
    """Size of the full file a header-only fixture stands for (the real size if it has no valid header)."""
    data = path.read_bytes()
    if not path.name.endswith(".safetensors") or len(data) < 8:
        return len(data)
    (n,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + n])
        end = max((e["data_offsets"][1] for k, e in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError):
        return len(data)
    return 8 + n + end


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: HubStandIn
    root: Path

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    # -- routing -------------------------------------------------------------------------
    def _dispatch(self, *, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/safetensors-metadata/(.+)", path)
        if m:
            return self._sharded_metadata(m.group(1), m.group(2), head=head)
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if m:
            return self._model_info(m.group(1), m.group(2) or "main", head=head)
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            return self._resolve(m.group(1), m.group(2), m.group(3), head=head)
        self._error(404, "EntryNotFound", f"no route for {path}", head=head)

    def _repo(self, repo_id: str, revision: str, *, head: bool) -> tuple[Path, str] | None:
        folder = self.root / repo_id
        if not folder.is_dir():
            self._error(404, "RepoNotFound", "Repository not found", head=head)
            return None
        meta = json.loads((folder / "_repo.json").read_text()) if (folder / "_repo.json").is_file() else {}
        if meta.get("gated") and self.headers.get("Authorization") != f"Bearer {TEST_TOKEN}":
            self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted.", head=head)
            return None
        commit = commit_of(repo_id)
        revisions = {"main": commit, commit: commit, **meta.get("revisions", {})}
        revisions.update({sha: sha for sha in list(revisions.values())})
        if revision not in revisions:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
            return None
        return folder, revisions[revision]

    # -- endpoints -----------------------------------------------------------------------
    def _resolve(self, repo_id: str, revision: str, filename: str, *, head: bool) -> None:
        found = self._repo(repo_id, revision, head=head)
        if found is None:
            return
        folder, commit = found
        file = folder / filename
        if filename.startswith("_") or ".." in filename.split("/") or not file.is_file():
            return self._error(404, "EntryNotFound", f"{filename} does not exist", head=head, commit=commit)
        data = file.read_bytes()
        size = virtual_size(file)
        etag = f'"{hashlib.sha1(data).hexdigest()}"'
        headers = {"X-Repo-Commit": commit, "ETag": etag, "X-Linked-Etag": etag, "Accept-Ranges": "bytes"}
        first, last, status = 0, size - 1, 200
        requested = self.headers.get("Range")
        if requested and not head:
            m = _RANGE.match(requested.strip())
            if not m or (m.group(1) == "" and m.group(2) == ""):
                return self._error(416, None, "bad range", head=head)
            if m.group(1) == "":
                first, last = max(0, size - int(m.group(2))), size - 1
            else:
                first = int(m.group(1))
                last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if first >= size or last < first:
                headers["Content-Range"] = f"bytes */{size}"
                return self._send(416, b"", headers, head=head)
            status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        if head:
            return self._send(200, b"", headers, head=True, length=size)
        # Bytes past the stored header stand for tensor data: zeros, counted like any other.
        body = data[first : last + 1] + b"\0" * max(0, last + 1 - max(first, len(data)))
        self._send(status, body, headers, head=False)

    def _model_info(self, repo_id: str, revision: str, *, head: bool) -> None:
        found = self._repo(repo_id, revision, head=head)
        if found is None:
            return
        folder, commit = found
        siblings = [{"rfilename": str(p.relative_to(folder))} for p in sorted(folder.rglob("*"))
                    if p.is_file() and not p.name.startswith("_")]  # fmt: skip
        info = {"id": repo_id, "modelId": repo_id, "sha": commit, "private": False,
                "gated": "auto" if (folder / "_repo.json").is_file() and "gated" in (folder / "_repo.json").read_text() else False,
                "siblings": siblings}  # fmt: skip
        self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, head=head)

    def _sharded_metadata(self, repo_id: str, filename: str, *, head: bool) -> None:
        found = self._repo(repo_id, "main", head=head)
        if found is None:
            return
        folder, commit = found
        index_path = folder / filename
        if not index_path.is_file():
            return self._error(404, "EntryNotFound", f"{filename} does not exist", head=head, commit=commit)
        index = json.loads(index_path.read_text())
        headers = {}
        for shard in sorted(set(index["weight_map"].values())):
            data = (folder / shard).read_bytes()
            (n,) = struct.unpack("<Q", data[:8])
            headers[shard] = json.loads(data[8 : 8 + n])
        payload = {"index": {k: v for k, v in index.items() if k != "weight_map"}, "headers": headers}
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._send(200, body, {"Content-Type": "application/json", "X-Repo-Commit": commit}, head=head)

    # -- plumbing ------------------------------------------------------------------------
    def _error(self, status: int, code: str | None, message: str, *, head: bool, commit: str | None = None) -> None:
        headers = {"X-Error-Message": message, "Content-Type": "application/json"}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, json.dumps({"error": message}).encode(), headers, head=head)

    def _send(self, status: int, body: bytes, headers: dict[str, str], *, head: bool, length: int | None = None) -> None:
        # Recorded before anything goes out, so a client that has its answer sees the record.
        with self.hub.lock:
            self.hub.requests.append(Request(self.command, self.path, status, self.headers.get("Range"),
                                             0 if head else len(body)))  # fmt: skip
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if not head:
            self.wfile.write(body)


def start(root: Path = DATA, host: str = "127.0.0.1", port: int = 0) -> HubStandIn:
    """Start the stand-in on a free port in a daemon thread; ``stop()`` it when done."""
    handler = type("Handler", (_Handler,), {"root": root})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    hub = HubStandIn(endpoint=f"http://{host}:{server.server_address[1]}", server=server)
    handler.hub = hub
    threading.Thread(target=server.serve_forever, name="hub-stand-in", daemon=True).start()
    return hub


if __name__ == "__main__":
    hub = start(port=8765)
    print(f"serving {DATA} at {hub.endpoint} (test token {TEST_TOKEN}); Ctrl-C to stop")
    threading.Event().wait()
