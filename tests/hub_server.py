"""A loopback stand-in for the Hugging Face Hub, serving repos from tests/data/hub/<org>/<name>/.

It answers what huggingface_hub asks when it downloads files and reads safetensors headers:

- ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` with ``Range`` (206 + Content-Range),
  ``X-Repo-Commit``, ``ETag``, ``Content-Length``, and ``X-Error-Code`` on errors
  (``RepoNotFound``, ``GatedRepo``, ``RevisionNotFound``, ``EntryNotFound``), as
  huggingface_hub.utils.hf_raise_for_status reads them;
- ``GET /api/models/{repo_id}[/revision/{rev}]``: model info with its ``siblings``;
- ``GET /api/models?search=...&pipeline_tag=...&sort=...&limit=...``: the model search
  (``HfApi.list_models``), ids containing the term, with the ``pipeline_tag``, ``downloads``, ``likes``,
  ``trendingScore`` and ``createdAt`` a repo's ``_repo.json`` gives, sorted by the asked field (descending);
- ``POST /api/validate-yaml`` (README.md's front matter must be a YAML mapping), ``POST /api/repos/create``,
  ``POST /api/{type}s/{repo_id}/preupload/{rev}`` (every file "regular") and
  ``POST /api/{type}s/{repo_id}/commit/{rev}`` (NDJSON, base64 files): what ``HfApi.create_repo`` and
  ``upload_folder`` send; uploaded files are kept in ``hub.uploads["{type}s/{repo_id}"]`` (memory only);
- ``GET /api/models/{repo_id}/safetensors-metadata/{index}``: every shard header in one
  response, as ``HfApi.get_sharded_safetensors_metadata`` expects (default branch only).

Safetensors fixtures hold only the 8-byte length and the header; the server reports the
virtual file size (header + the body the offsets describe) and serves zeros for body bytes,
so a reader that strays into tensor data is counted. A repo's optional ``_repo.json`` sets
``{"gated": true}`` (401 GatedRepo without ``Authorization: Bearer TEST_TOKEN``), extra
``{"revisions": {"v1.0": "<sha>"}}``, and ``{"sizes": {"<file>": bytes}}`` for files kept as
stubs (header-only GGUF files, ``consolidated.*.pth``): reported with that size, the rest served
as zeros. Every request and the body bytes sent are recorded.

Fault injection (for network-failure tests): ``hub.inject(Fault(...))`` makes matching
requests misbehave — delay, drop the connection, answer a status (429 + Retry-After, 5xx,
401/403/404), send a short or mis-labelled range, redirect, or announce more bytes than it
sends. Faults apply in order, each ``times`` times (``None``: always); ``reset()`` and
``clear_faults()`` remove them. Extra repos can be served from another folder with
``start(root=...)``.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
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
class Fault:
    """How matching requests misbehave.

    Matching: ``path`` is a regex searched in the request path; ``method`` ("GET"/"HEAD") and
    ``ranged`` (True: only requests with a Range header, False: only without) narrow it.

    Actions (the first that is set wins):
        delay_s: wait this long before answering normally (bounded; cut short by ``stop()``).
        reset: close the connection with a TCP reset instead of answering.
        status: answer this status with ``headers`` (e.g. ``{"Retry-After": "1"}``),
            ``error_code`` as X-Error-Code, and ``body`` (default: a small JSON error).
        redirect: answer 302 to this location (absolute, or a path on this server).
        short_by: answer the range correctly labelled but ``short_by`` bytes short, with a
            Content-Length to match (a well-formed, lying, response).
        content_range: answer 206 with this Content-Range header instead of the right one.
        truncate_by: announce the full Content-Length but send ``truncate_by`` fewer bytes, then
            close (a connection cut mid-body).
        ignore_range: answer 200 with the whole virtual file, as a server without range support.
        commit: answer with this X-Repo-Commit.
        huge_body: answer 200 with this many bytes (``body`` repeated, else spaces), sent in chunks until the
            client hangs up; ``declare`` sends the true Content-Length, else the answer is chunked (no length).
        drip_s: send the normal answer's body one byte every ``drip_s`` seconds (slow bytes; a read
            timeout never fires). With ``status`` set, the error answer drips.
        size: report this file size (HEAD Content-Length, Content-Range totals, model-info sizes), a lie.
    """

    path: str = ""
    method: str | None = None
    ranged: bool | None = None
    times: int | None = None
    delay_s: float | None = None
    reset: bool = False
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error_code: str | None = None
    body: bytes | None = None
    redirect: str | None = None
    short_by: int | None = None
    content_range: str | None = None
    truncate_by: int | None = None
    ignore_range: bool = False
    commit: str | None = None
    huge_body: int | None = None
    declare: bool = False
    drip_s: float | None = None
    size: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str, has_range: bool) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.ranged is not None and self.ranged != has_range:
            return False
        return re.search(self.path, path) is not None


@dataclass
class HubStandIn:
    """Handle on a running stand-in: its endpoint and what it served."""

    endpoint: str
    server: ThreadingHTTPServer
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: list[Fault] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    #: Authorization headers received, in order (to check where a token went).
    authorizations: list[str | None] = field(default_factory=list)
    #: Files committed through the upload endpoints: ``"datasets/org/name"`` -> path -> bytes.
    uploads: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, method: str, path: str, has_range: bool) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path, has_range):
                    fault.hits += 1
                    return fault
        return None

    @property
    def bytes_served(self) -> int:
        with self.lock:
            return sum(r.body_bytes for r in self.requests)

    @property
    def request_count(self) -> int:
        with self.lock:
            return len(self.requests)

    def reset(self) -> None:
        """Forget the recorded requests, and remove every injected fault."""
        with self.lock:
            self.requests.clear()
            self.authorizations.clear()
            self.faults.clear()

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def commit_of(repo_id: str) -> str:
    return hashlib.sha1(repo_id.encode()).hexdigest()


def declared_sizes(folder: Path) -> dict[str, int]:
    """``_repo.json``'s ``sizes``: the size the Hub reports for files kept as stubs (``consolidated.*.pth``)."""
    meta = folder / "_repo.json"
    return json.loads(meta.read_text()).get("sizes", {}) if meta.is_file() else {}


def virtual_size(path: Path, *, repo: Path | None = None) -> int:
    """Size of the full file a fixture stands for: a declared size, the header-only safetensors' full
    size, or the real size."""
    data = path.read_bytes()
    repo = path.parent if repo is None else repo
    declared = declared_sizes(repo).get(str(path.relative_to(repo)))
    if declared is not None:
        return max(len(data), int(declared))
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

    def do_POST(self) -> None:
        path = unquote(urlsplit(self.path).path)
        with self.hub.lock:
            self.hub.authorizations.append(self.headers.get("Authorization"))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/api/validate-yaml":  # upload_folder checks README.md's front matter first
            content = json.loads(body)["content"]
            problems = []
            if content.startswith("---\n"):
                import yaml

                try:
                    if not isinstance(yaml.safe_load(content[4 : content.index("\n---", 3)]), dict):
                        problems.append({"message": "the front matter is not a mapping"})
                except (ValueError, yaml.YAMLError) as e:
                    problems.append({"message": f"invalid YAML: {e}"})
            return self._send(400 if problems else 200, json.dumps({"errors": problems, "warnings": []}).encode(),
                              {"Content-Type": "application/json"}, head=False)
        if path == "/api/repos/create":
            request = json.loads(body or b"{}")
            name = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
            kind = request.get("type") or "model"
            key = f"{kind}s/{name}"
            with self.hub.lock:
                exists = key in self.hub.uploads
                self.hub.uploads.setdefault(key, {})
            url = f"{self.hub.endpoint}/{'' if kind == 'model' else kind + 's/'}{name}"
            # The Hub's 409 names the existing repo's url too (create_repo(exist_ok=True) reads it).
            answer = {"error": "You already created this repo", "url": url} if exists else {"url": url, "name": name}
            return self._send(409 if exists else 200, json.dumps(answer).encode(),
                              {"Content-Type": "application/json"}, head=False)
        m = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)/(preupload|commit)/([^/]+)", path)
        if not m:
            return self._error(404, "EntryNotFound", f"no route for POST {path}", head=False)
        key = f"{m.group(1)}/{m.group(2)}"
        with self.hub.lock:
            files = self.hub.uploads.get(key)
        if files is None:
            return self._error(404, "RepoNotFound", "Repository not found", head=False)
        if m.group(3) == "preupload":
            listed = json.loads(body)["files"]
            answer = {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in listed]}
            return self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/json"}, head=False)
        import base64

        for line in body.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                with self.hub.lock:
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        oid = hashlib.sha1(body).hexdigest()
        answer = {"commitUrl": f"{self.hub.endpoint}/{key}/commit/{oid}", "commitOid": oid}
        self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/json"}, head=False)

    # -- routing -------------------------------------------------------------------------
    def _dispatch(self, *, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        with self.hub.lock:
            self.hub.authorizations.append(self.headers.get("Authorization"))
        fault = self.hub.take_fault(self.command, path, self.headers.get("Range") is not None)
        self._fault = fault
        if fault is not None and self._misbehave(fault, head=head):
            return
        if path == "/api/models":
            return self._search(urlsplit(self.path).query, head=head)
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
        size = virtual_size(file, repo=folder)
        fault = getattr(self, "_fault", None)
        if fault is not None and fault.size is not None:
            size = fault.size  # a lie: the HEAD and the Content-Range totals say it, the bytes stay what they are
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
        status, body, headers, length = self._alter(status, body, headers, size, len(data), head=head)
        if length is not None and length < 0:
            return self._send_whole(data, -length, headers)
        self._send(status, body, headers, head=False, length=length)

    def _send_whole(self, data: bytes, size: int, headers: dict[str, str]) -> None:
        """200 with the whole virtual file, in chunks, stopping when the client hangs up."""
        sent = 0
        try:
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.write(data)
            sent = len(data)
            zeros = b"\0" * (1 << 16)
            while sent < size and not self.hub.stopping.is_set():
                chunk = zeros[: min(len(zeros), size - sent)]
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            self.close_connection = True
        finally:
            self._record(200, sent)

    def _model_info(self, repo_id: str, revision: str, *, head: bool) -> None:
        found = self._repo(repo_id, revision, head=head)
        if found is None:
            return
        folder, commit = found
        siblings = [{"rfilename": str(p.relative_to(folder))} for p in sorted(folder.rglob("*"))
                    if p.is_file() and not p.name.startswith("_")]  # fmt: skip
        if "blobs=" in urlsplit(self.path).query:  # HfApi.model_info(files_metadata=True)
            for sibling in siblings:
                file = folder / sibling["rfilename"]
                sibling["size"] = virtual_size(file, repo=folder)
                sibling["blobId"] = hashlib.sha1(file.read_bytes()).hexdigest()
        info = {"id": repo_id, "modelId": repo_id, "sha": commit, "private": False,
                "gated": "auto" if (folder / "_repo.json").is_file() and "gated" in (folder / "_repo.json").read_text() else False,
                "siblings": siblings}  # fmt: skip
        self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, head=head)

    def _search(self, query: str, *, head: bool) -> None:
        """``HfApi.list_models(search=..., pipeline_tag=..., sort=..., limit=...)``: repo ids containing the
        term (case-insensitive), with the listing fields of each repo's ``_repo.json``."""
        from urllib.parse import parse_qs

        params = parse_qs(query)
        term = params.get("search", [""])[0].lower()
        tag = params.get("pipeline_tag", [None])[0]
        sort = params.get("sort", [None])[0]
        limit = int(params.get("limit", ["1000"])[0])
        found = []
        for org in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for repo in sorted(p for p in org.iterdir() if p.is_dir()):
                repo_id = f"{org.name}/{repo.name}"
                meta = json.loads((repo / "_repo.json").read_text()) if (repo / "_repo.json").is_file() else {}
                if term not in repo_id.lower() or (tag is not None and meta.get("pipeline_tag") != tag):
                    continue
                item = {"id": repo_id, "modelId": repo_id, "private": False, "downloads": 0, "likes": 0, "tags": []}
                item.update({k: meta[k] for k in ("pipeline_tag", "downloads", "likes", "trendingScore", "createdAt")
                             if k in meta})
                found.append(item)
        if sort in ("downloads", "likes", "trendingScore"):
            found.sort(key=lambda item: -item.get(sort, 0))
        self._send(200, json.dumps(found[:limit]).encode(), {"Content-Type": "application/json"}, head=head)

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

    # -- faults --------------------------------------------------------------------------
    def _misbehave(self, fault: Fault, *, head: bool) -> bool:
        """Act on a fault that replaces the answer; ``False`` lets the request go on (maybe altered later)."""
        if fault.delay_s is not None:
            self.hub.stopping.wait(min(fault.delay_s, 30.0))
            return False
        if fault.reset:
            self._record(0, 0)
            # SO_LINGER 0: close() sends RST, the client sees "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return True
        if fault.status is not None:
            headers = {"Content-Type": "application/json", "X-Error-Message": f"injected {fault.status}", **fault.headers}
            if fault.error_code:
                headers["X-Error-Code"] = fault.error_code
            body = fault.body if fault.body is not None else json.dumps({"error": f"injected {fault.status}"}).encode()
            self._send(fault.status, body, headers, head=head)
            return True
        if fault.redirect is not None:
            self._send(302, b"", {"Location": fault.redirect, **fault.headers}, head=head)
            return True
        if fault.huge_body is not None:
            self._send_huge(fault, head=head)
            return True
        return False

    def _send_huge(self, fault: Fault, *, head: bool) -> None:
        """200 with ``fault.huge_body`` bytes, chunked unless declared, stopping when the client hangs up."""
        sent = 0
        unit = (fault.body or b" ") * max(1, (1 << 16) // len(fault.body or b" "))
        try:
            self.send_response(200)
            for key, value in {"Content-Type": "application/json", **fault.headers}.items():
                self.send_header(key, value)
            if fault.declare or head:
                self.send_header("Content-Length", str(fault.huge_body))
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while not head and sent < fault.huge_body and not self.hub.stopping.is_set():
                chunk = unit[: min(len(unit), fault.huge_body - sent)]
                self.wfile.write(chunk if fault.declare else b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            if not head and not fault.declare:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        finally:
            self.close_connection = True
            self._record(200, sent)

    def _alter(self, status: int, body: bytes, headers: dict[str, str], size: int, data_len: int,
               *, head: bool) -> tuple[int, bytes, dict[str, str], int | None]:
        """Apply a fault that changes a normal file answer: short, mislabelled, truncated or whole."""
        fault = getattr(self, "_fault", None)
        length: int | None = None
        if fault is None or head:
            return status, body, headers, length
        if fault.commit is not None:
            headers["X-Repo-Commit"] = fault.commit
        if fault.ignore_range:
            headers.pop("Content-Range", None)
            # The whole virtual file: its stored bytes then zeros, sent lazily by _send.
            return 200, b"", headers, -size
        if status != 206:
            return status, body, headers, length
        if fault.short_by is not None:
            body = body[: max(0, len(body) - fault.short_by)]
        if fault.content_range is not None:
            headers["Content-Range"] = fault.content_range
        if fault.truncate_by is not None:
            length = len(body)
            body = body[: max(0, len(body) - fault.truncate_by)]
            self.close_connection = True
        return status, body, headers, length

    def _record(self, status: int, body_bytes: int) -> None:
        with self.hub.lock:
            self.hub.requests.append(Request(self.command, self.path, status, self.headers.get("Range"), body_bytes))

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
        self._record(status, 0 if head else len(body))
        drip = getattr(getattr(self, "_fault", None), "drip_s", None)
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            if not head and drip is None:
                self.wfile.write(body)
            elif not head:
                for i in range(len(body)):  # slow bytes: each within any read timeout
                    if self.hub.stopping.wait(drip):
                        break
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
        except OSError:  # the client gave up (a timeout under test): nothing to answer
            self.close_connection = True


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
