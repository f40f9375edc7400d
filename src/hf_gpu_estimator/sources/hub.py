"""Hub I/O: config.json through the huggingface_hub cache, safetensors headers by range requests.

Everything goes through ``huggingface_hub`` so ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``
and its cache behave as users expect. Tensor data is never requested: a header costs one
request on the Hub's batched metadata endpoint, or two range requests per shard elsewhere
(8 bytes for the length, then exactly the header).
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from hf_gpu_estimator import errors
from hf_gpu_estimator.constants import HUB_DEADLINE_ENV, hub_deadline_s
from hf_gpu_estimator.sources._json import JSONProblem, loads
from hf_gpu_estimator.sources.config import MAX_CONFIG_BYTES, config_from_json_text
from hf_gpu_estimator.sources.safetensors_header import (
    LENGTH_PREFIX_BYTES,
    header_length,
    parse_header_json,
    tensors_from_header,
)
from hf_gpu_estimator.spec import TensorInfo

CONFIG_FILE = "config.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
#: Seconds to wait for each request (huggingface_hub's HF_HUB_DOWNLOAD_TIMEOUT default is 10).
TIMEOUT_S = 10.0
#: Seconds to wait for a connection (DNS + TCP + TLS). A Hub that cannot be reached fails after
#: this once, with no retry: retrying a refused connection or a failed DNS lookup only adds
#: waiting (huggingface_hub's download retries them five times, about 23 s, printing each).
CONNECT_TIMEOUT_S = 3.0
#: Transient answers (HTTP 408/429/5xx, a read timeout, a connection dropped mid-answer) are
#: retried with exponential backoff (1, 2, 4 s), at most this many attempts in all ...
MAX_ATTEMPTS = 4
#: ... and never past this many seconds after the first attempt (a Retry-After asking for longer
#: ends the retries at once).
RETRY_BUDGET_S = 15.0
#: After a connection failure, the endpoint is treated as unreachable for this long, so a
#: process that inspects many models (planner sweeps, a web server) does not wait once per model.
#: Only a connection that cannot be made marks the endpoint; an HTTP answer (a 503 for one repo) is
#: about that repo, and is remembered for that repo only, for :data:`FAILED_REPO_MEMO_S`.
UNREACHABLE_MEMO_S = 30.0
FAILED_REPO_MEMO_S = 5.0
#: Statuses worth a retry (huggingface_hub.utils._http._DEFAULT_RETRY_ON_STATUS_CODES).
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_sleep = time.sleep  # tests replace it
_unreachable: dict[str, tuple[float, str]] = {}
T = TypeVar("T")
_MAX_WORKERS = 8
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_CACHE_VERSION = 1
_MAX_REPO_ID_CHARS = 96
#: The index lists shard names; a real one is well under a megabyte.
_MAX_INDEX_BYTES = 64 << 20
#: The safetensors-metadata answer holds every shard's header (DeepSeek-V3's 163 shards: ~20 MB).
_MAX_METADATA_BYTES = 256 << 20
#: A model-info answer lists the repo's files (the largest repos: tens of thousands of files, a few MB).
_MAX_MODEL_INFO_BYTES = 64 << 20
#: Of an error answer (4xx/5xx), only this much is read: its message, never a hostile body.
_MAX_ERROR_BODY_BYTES = 64 << 10
#: The deadline of the run in progress (time.monotonic()), shared by the threads it starts.
_DEADLINE: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar("hfge_hub_deadline",
                                                                                       default=None)


def looks_like_repo_id(text: str) -> bool:
    """Whether ``text`` is shaped like a Hub repo id (``name`` or ``org/name``)."""
    # huggingface_hub's validate_repo_id also caps the length at 96 characters.
    return (bool(_REPO_ID.match(text)) and ".." not in text and not text.endswith((".", "-"))
            and len(text) <= _MAX_REPO_ID_CHARS)


@dataclass(frozen=True, kw_only=True)
class HubCheckpoint:
    """What the Hub (or its cache) holds about a repo: config.json and header tensors, either may be absent."""

    repo_id: str
    commit: str | None
    config: dict[str, object] | None
    tensors: tuple[TensorInfo, ...] | None
    notes: tuple[str, ...] = ()
    url: str | None = None
    #: Meta's original layout (no config.json): params.json's path in the repo and its content.
    meta_params_file: str | None = None
    meta_params: dict[str, object] | None = None
    #: File sizes the Hub reports (read when the repo has no config.json).
    file_sizes: Mapping[str, int] | None = None


def read_hub(repo_id: str, *, revision: str | None = None, token: str | bool | None = None) -> HubCheckpoint:
    """Read config.json and every safetensors header of a Hub repo.

    Args:
        repo_id: ``org/name``.
        revision: Branch, tag or commit; ``None`` for the default branch.
        token: Hub token; ``None`` uses ``HF_TOKEN`` or the saved login, as huggingface_hub does.

    Raises:
        ModelNotFoundError, RevisionNotFoundError, GatedRepoError, HubConnectionError,
        MalformedConfigError, MalformedHeaderError: typed, with the cause chained.
    """
    from huggingface_hub import constants

    endpoint = _endpoint()
    offline = constants.is_offline_mode()
    notes: list[str] = []
    config, commit, reached = _read_config(repo_id, revision=revision, token=token, endpoint=endpoint,
                                           offline=offline)  # fmt: skip
    if commit is None and revision is not None and re.fullmatch(r"[0-9a-f]{40}", revision):
        commit = revision
    if not reached and not offline:
        notes.append(f"{endpoint} could not be reached ({unreachable_reason(endpoint, repo_id)}): config.json from the "
                     "huggingface_hub cache")  # fmt: skip
    if config is None and reached and not offline:
        meta = _read_meta_params(repo_id, revision=revision, token=token, endpoint=endpoint)
        if meta is not None:
            name, params, sizes, meta_commit = meta
            return HubCheckpoint(repo_id=repo_id, commit=commit or meta_commit, config=None, tensors=None,
                                 notes=tuple(notes), url=f"{endpoint}/{repo_id}", meta_params_file=name,
                                 meta_params=params, file_sizes=sizes)  # fmt: skip
    tensors = _load_cached_tensors(repo_id, commit)
    if tensors is None and offline:
        notes.append("offline (HF_HUB_OFFLINE=1): safetensors headers not cached, counts from config.json")
    elif tensors is None and not reached:
        notes.append("safetensors headers not cached: counts from config.json")
    elif tensors is None:
        tensors, commit = _read_tensors(repo_id, revision=commit or revision, token=token, endpoint=endpoint,
                                        main=revision in (None, "main"), commit=commit)  # fmt: skip
        if tensors is not None and commit is not None:
            _store_cached_tensors(repo_id, commit, tensors)
        if tensors is None:
            notes.append(f"{repo_id} has no {SINGLE_FILE} or {INDEX_FILE}: counts from config.json")
    if config is None and tensors is None:
        raise errors.ModelNotFoundError(
            repo_id, f"{repo_id!r} has neither {CONFIG_FILE} nor safetensors weights; point at a transformers model repo"
        )
    return HubCheckpoint(
        repo_id=repo_id, commit=commit, config=config, tensors=tensors, notes=tuple(notes),
        url=f"{endpoint}/{repo_id}",
    )  # fmt: skip


def unreachable_reason(endpoint: str | None = None, repo_id: str | None = None) -> str | None:
    """Why ``endpoint`` (default: the current one), or ``repo_id`` on it, failed in the last moments, or ``None``."""
    endpoint = endpoint or _endpoint()
    for key in (endpoint, _repo_key(endpoint, repo_id) if repo_id else None):
        memo = _unreachable.get(key) if key else None
        if memo is not None and time.monotonic() < memo[0]:
            return memo[1]
    return None


def _repo_key(endpoint: str, repo_id: str | None) -> str:
    return f"{endpoint} {repo_id}"


def _endpoint() -> str:
    from huggingface_hub import constants

    # constants.ENDPOINT is read from HF_ENDPOINT at import; prefer the variable as it is now.
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _read_config(
    repo_id: str, *, revision: str | None, token: str | bool | None, endpoint: str, offline: bool
) -> tuple[dict[str, object] | None, str | None, bool]:
    """config.json (or ``None`` when the repo has none), its commit, and whether the Hub answered.

    Online, one HEAD (retried only for transient answers, see :func:`_retrying`) decides first:
    an unreachable Hub falls back to the huggingface_hub cache at once, or fails in one line,
    instead of going through ``hf_hub_download``'s own retries.
    """
    from huggingface_hub import hf_hub_download, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    reached = offline
    with _hub_errors(repo_id, revision=revision, endpoint=endpoint, offline=offline):
        if not offline:
            url = hf_hub_url(repo_id, CONFIG_FILE, revision=revision, endpoint=endpoint)
            try:
                metadata = _retrying(lambda: _head(url, token=token), endpoint=endpoint, repo_id=repo_id)
                reached = True
            except EntryNotFoundError:
                return None, None, True
            except (HubUnreachable, HfHubHTTPError, *_transport_errors()) as e:
                transient = isinstance(e, HubUnreachable) or not isinstance(e, HfHubHTTPError) or getattr(
                    getattr(e, "response", None), "status_code", None) in TRANSIENT_STATUS  # fmt: skip
                if not transient:
                    raise
                try:  # as hf_hub_download does when its HEAD fails: the cached file, if there is one
                    path = hf_hub_download(repo_id, CONFIG_FILE, revision=revision, token=token, endpoint=endpoint,
                                           local_files_only=True)  # fmt: skip
                except (LocalEntryNotFoundError, EntryNotFoundError):
                    if not isinstance(e, HubUnreachable):
                        raise e from None
                    raise errors.HubConnectionError(
                        repo_id, f"could not reach {endpoint} for {repo_id!r} ({e.reason}) and it is not in the cache: "
                        "check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache",
                    ) from e  # fmt: skip
                if not isinstance(e, HubUnreachable):
                    _unreachable[_repo_key(endpoint, repo_id)] = (time.monotonic() + FAILED_REPO_MEMO_S, _describe(e))
                return _config_at(path, repo_id) + (False,)
            size = getattr(metadata, "size", None)
            if isinstance(size, int) and size > MAX_CONFIG_BYTES:  # refused before a byte of it is downloaded
                raise errors.MalformedConfigError(
                    f"{repo_id}/{CONFIG_FILE}", f"{repo_id}/{CONFIG_FILE}: the Hub reports {size:,} bytes, over the "
                    f"{MAX_CONFIG_BYTES:,} a config.json can plausibly be; the file is corrupt", field=CONFIG_FILE,
                )  # fmt: skip
            # Already cached at the commit the HEAD named: no second request (hf_hub_download would HEAD again).
            commit = getattr(metadata, "commit_hash", None)
            if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}", commit):
                cached = try_to_load_from_cache(repo_id, CONFIG_FILE, revision=commit)
                if isinstance(cached, str):
                    return _config_at(cached, repo_id) + (True,)
                # Our own GET: retried like every other request, capped, within the deadline (hf_hub_download
                # retries nothing after its HEAD and reads whatever length the server sends).
                data = _download_to_cache(repo_id, CONFIG_FILE, revision=revision, commit=commit,
                                          etag=getattr(metadata, "etag", None), token=token, endpoint=endpoint,
                                          max_bytes=MAX_CONFIG_BYTES)  # fmt: skip
                return config_from_json_text(data, source=f"{repo_id}/{CONFIG_FILE}"), commit, True
        try:
            with _quiet_hub_retries():
                path = hf_hub_download(repo_id, CONFIG_FILE, revision=revision, token=token, endpoint=endpoint)
        except LocalEntryNotFoundError:
            raise
        except EntryNotFoundError:
            return None, None, reached
    return _config_at(path, repo_id) + (reached,)


def _download_to_cache(repo_id: str, filename: str, *, revision: str | None, commit: str, etag: str | None,
                       token: str | bool | None, endpoint: str, max_bytes: int) -> bytes:  # fmt: skip
    """GET a small file at ``commit`` (capped, retried), kept in the huggingface_hub cache; returns its bytes.

    The cache layout huggingface_hub reads (``try_to_load_from_cache``, ``hf_hub_download(local_files_only=True)``,
    offline mode): ``blobs/<etag>``, ``snapshots/<commit>/<filename>`` linking to it, ``refs/<revision>``
    naming the commit (huggingface_hub ``file_download.py``, ``_cache_commit_hash_for_specific_revision``).
    """
    import hashlib

    from huggingface_hub import constants, hf_hub_url
    from huggingface_hub.file_download import repo_folder_name

    source = f"{repo_id}/{filename}"

    def too_large(reason: str) -> Exception:
        return errors.MalformedConfigError(source, f"{source}: {reason}; the file is corrupt", field=filename)

    url = hf_hub_url(repo_id, filename, revision=commit, endpoint=endpoint)
    answer = _retrying(lambda: _stream_get(url, token=token, max_bytes=max_bytes, too_large=too_large),
                       endpoint=endpoint, repo_id=repo_id)  # fmt: skip
    data = answer.content
    cache = Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)
    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    name = etag.strip('"') if isinstance(etag, str) and re.fullmatch(r'"?[\w-]{1,128}"?', etag) else \
        hashlib.sha256(data).hexdigest()  # fmt: skip
    blob = storage / "blobs" / name
    snapshot = storage / "snapshots" / commit / filename
    tmp = blob.with_name(f".{blob.name}.{os.getpid()}.{threading.get_ident()}.incomplete")
    try:
        blob.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)  # then renamed: a reader never sees half a blob
        os.replace(tmp, blob)
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        if not snapshot.exists():
            try:
                snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
            except OSError:  # no symlinks (Windows without developer mode): a copy, as huggingface_hub does
                snapshot.write_bytes(data)
        ref = revision or constants.DEFAULT_REVISION
        if ref != commit and ".." not in ref.split("/"):
            (storage / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
            (storage / "refs" / ref).write_text(commit)
    except OSError:
        # A read-only cache costs only the next call its download: the bytes are in hand.
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return data


def _read_meta_params(
    repo_id: str, *, revision: str | None, token: str | bool | None, endpoint: str
) -> tuple[str, dict[str, object], dict[str, int], str | None] | None:
    """Meta's params.json (root or ``original/``) with the repo's file sizes; ``None`` if the repo has none.

    One model-info request lists the files and their sizes; params.json (a few hundred bytes) is
    then read with a cap.
    """
    from hf_gpu_estimator.sources.meta import MAX_PARAMS_BYTES, PARAMS_LOCATIONS, params_from_bytes

    with _hub_errors(repo_id, revision=revision, endpoint=endpoint, offline=False):
        files, sha = model_files(repo_id, revision=revision, token=token, endpoint=endpoint)
        name = next((n for n in PARAMS_LOCATIONS if n in files), None)
        if name is None:
            return None
        data = read_hub_file(repo_id, name, revision=sha or revision, token=token, max_bytes=MAX_PARAMS_BYTES,
                             size=files[name])  # fmt: skip
    sizes = {n: size for n, size in files.items() if size is not None}
    return name, params_from_bytes(data, source=f"{repo_id}/{name}"), sizes, sha


def read_hub_file(repo_id: str, filename: str, *, revision: str | None, token: str | bool | None,
                  max_bytes: int, size: int | None = None) -> bytes:  # fmt: skip
    """A small file of a repo (params.json, a tokenizer), read with a cap, retried, within the deadline.

    Refused when the Hub reports (``size``, from :func:`model_files`), announces or sends more than ``max_bytes``.

    Raises:
        MalformedConfigError: over ``max_bytes``.
    """
    from huggingface_hub import hf_hub_url

    endpoint = _endpoint()
    source = f"{repo_id}/{filename}"

    def too_large(reason: str) -> Exception:
        return errors.MalformedConfigError(source, f"{source}: {reason}; the file is corrupt", field=filename)

    if size is not None and size > max_bytes:
        raise too_large(f"the Hub reports {size:,} bytes, over the limit of {max_bytes:,}")
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    with _hub_errors(repo_id, revision=revision, endpoint=endpoint, offline=False):
        answer = _retrying(lambda: _stream_get(url, token=token, max_bytes=max_bytes, too_large=too_large),
                           endpoint=endpoint, repo_id=repo_id)  # fmt: skip
    return answer.content


def _config_at(path: str, repo_id: str) -> tuple[dict[str, object], str | None]:
    with open(path, "rb") as f:
        text = f.read(MAX_CONFIG_BYTES + 1)  # one byte over: config_from_json_text refuses it, nothing more is read
    commit = Path(path).parent.name  # <cache>/models--org--name/snapshots/<commit>/config.json
    return (config_from_json_text(text, source=f"{repo_id}/{CONFIG_FILE}"),
            commit if re.fullmatch(r"[0-9a-f]{40}", commit) else None)  # fmt: skip


class HubUnreachable(Exception):
    """No connection could be made (DNS failure, refused, connect timeout); ``reason`` says which."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _timeout() -> object:
    import httpx2

    left = _remaining("the Hub")
    return httpx2.Timeout(min(TIMEOUT_S, left), connect=min(CONNECT_TIMEOUT_S, TIMEOUT_S, left))


# --- One deadline for the whole run, and bodies read with a cap -------------------------------------


def with_deadline(call: Callable[[], T], *, source: str) -> T:
    """``call()`` under one deadline for every Hub request it makes (:data:`HUB_DEADLINE_ENV`).

    Request timeouts bound each read, not a request, and retries multiply them: a server that
    sends one byte every few seconds, or answers slowly many times, would hold a run forever. The
    call runs in a daemon thread the caller waits for until the deadline; every request inside
    takes its timeouts from the time left and every streamed body checks it between chunks, so
    the thread ends soon after. A call made inside another shares the outer deadline.

    Raises:
        HubConnectionError: the deadline passed.
    """
    if _DEADLINE.get() is not None:
        return call()
    budget = hub_deadline_s()
    token = _DEADLINE.set((time.monotonic() + budget, budget))
    context = contextvars.copy_context()
    _DEADLINE.reset(token)
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, context.run(call)))
        except BaseException as e:  # re-raised in the caller's thread
            outcome.append((False, e))

    worker = threading.Thread(target=run, name="hfge-hub", daemon=True)
    worker.start()
    worker.join(budget + 1.0)  # the worker raises at the deadline itself; the second covers its last read
    if not outcome:
        raise _deadline_error(source, budget)
    ok, value = outcome[0]
    if not ok:
        raise value  # type: ignore[misc]
    return value  # type: ignore[return-value]


def _deadline_error(source: str, budget: float) -> errors.HubConnectionError:
    return errors.HubConnectionError(
        source, f"{_endpoint()} did not finish answering for {source!r} within {budget:g} s ({HUB_DEADLINE_ENV}): "
        "the Hub or a proxy is stalling; retry later, raise the deadline, or set HF_HUB_OFFLINE=1 to use the cache",
    )  # fmt: skip


def _remaining(source: str, *, slack: float = 0.0) -> float:
    """Seconds left before the run's deadline (infinite outside :func:`with_deadline`).

    Raises:
        HubConnectionError: none are left.
    """
    found = _DEADLINE.get()
    if found is None:
        return math.inf
    left = found[0] - time.monotonic()
    if left <= slack:
        raise _deadline_error(source, found[1])
    return left


@dataclass(frozen=True)
class _Answer:
    status: int
    content: bytes
    headers: Mapping[str, str]


def _stream_get(url: str, *, token: str | bool | None, max_bytes: int, too_large: Callable[[str], Exception],
                range_: tuple[int, int] | None = None, accept: frozenset[int] = frozenset()) -> _Answer:  # fmt: skip
    """GET ``url``, never reading a body past ``max_bytes`` (nor an error body past a few KB), within the deadline.

    An error status raises as huggingface_hub's ``hf_raise_for_status`` would (from at most
    :data:`_MAX_ERROR_BODY_BYTES` of the body). A body declared (Content-Length) or found longer than
    ``max_bytes`` raises ``too_large(reason)``. With ``range_``, a server that ignores the Range
    header (200 and the whole file) is read only up to the range's end. Statuses in ``accept`` are
    returned (their body capped like an error's) instead of raised.
    """
    import httpx2
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    headers = build_hf_headers(token=token)
    if range_ is not None:
        headers["Range"] = f"bytes={range_[0]}-{range_[1]}"
    with get_session().stream("GET", url, headers=headers, timeout=_timeout(), follow_redirects=True) as response:
        status = response.status_code
        limit = _MAX_ERROR_BODY_BYTES if status >= 400 else max_bytes
        declared = response.headers.get("Content-Length", "")
        if status < 400 and range_ is None and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
            raise too_large(f"the server announces {int(declared):,} bytes, over the limit of {max_bytes:,}")
        stop = range_[1] + 1 if range_ is not None and status == 200 else None  # the range is read out of the whole
        if stop is not None:
            limit = stop
        chunks: list[bytes] = []
        kept = 0
        for chunk in response.iter_bytes():
            _remaining(url)
            chunks.append(chunk)
            kept += len(chunk)
            if stop is not None and kept >= stop:
                break
            if kept > limit:
                if status >= 400:
                    break
                raise too_large(f"the answer runs past the limit of {max_bytes:,} bytes")
        content = b"".join(chunks)
        if status >= 400 and status not in accept:
            small = httpx2.Response(status, headers=response.headers, content=content[:limit], request=response.request)
            hf_raise_for_status(small)
        return _Answer(status, content, response.headers)


def ranged_get(url: str, first: int, last: int, *, token: str | bool | None, source: str,
               endpoint: str) -> tuple[bytes, int | None, str | None]:  # fmt: skip
    """Bytes ``first..last`` of a Hub file: its bytes, the file size (Content-Range), the X-Repo-Commit.

    The answer must be the range asked for: 206 with a Content-Range of exactly ``first`` to
    ``min(last, size - 1)`` and that many bytes, or 200 (a server without range support, read only
    as far as needed). A range past the end (416) is ``b""``. Anything else is a typed error: a
    short or mislabelled range would otherwise cost a request per few bytes, or hide the file size.

    Raises:
        HubConnectionError: a mangled answer.
    """
    def mangled(reason: str) -> Exception:
        return errors.HubConnectionError(source, f"{endpoint} answered a range request for {source!r} with {reason}")

    answer = _stream_get(url, token=token, max_bytes=last - first + 1, too_large=mangled, range_=(first, last))
    content_range = answer.headers.get("Content-Range", answer.headers.get("content-range", ""))
    commit = _commit_header(answer)
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", content_range)
    total = int(m.group(3)) if m and m.group(3).isdigit() else None
    if answer.status == 416:
        return b"", total, commit
    if answer.status == 200:
        length = answer.headers.get("Content-Length", answer.headers.get("content-length", ""))
        return answer.content[first : last + 1], int(length) if length.isdigit() else None, commit
    end = last if total is None else min(last, total - 1)
    if answer.status != 206 or m is None or m.group(1) is None or int(m.group(1)) != first \
            or int(m.group(2)) != end or len(answer.content) != end - first + 1:
        raise errors.HubConnectionError(
            source, f"{endpoint} answered HTTP {answer.status} with Content-Range {content_range[:80]!r} and "
            f"{len(answer.content):,} bytes to a request for bytes {first}-{last} of {source!r}: the server or a proxy "
            "mangled the range request; retry later, or set HF_ENDPOINT to a Hub that supports range requests",
        )  # fmt: skip
    return answer.content, total, commit


def model_files(repo_id: str, *, revision: str | None, token: str | bool | None,
                endpoint: str) -> tuple[dict[str, int | None], str | None]:  # fmt: skip
    """The repo's files with the sizes the Hub reports, and its commit: one capped model-info request.

    The answer is read with a cap (a hostile one of gigabytes costs nothing), within the deadline.
    """
    url = f"{endpoint}/api/models/{repo_id}" + (f"/revision/{quote(revision, safe='')}" if revision else "")
    source = f"{repo_id} (model info)"

    def too_large(reason: str) -> Exception:
        return errors.MalformedHeaderError(source, f"model info: {reason}")

    answer = _retrying(lambda: _stream_get(url + "?blobs=true", token=token, max_bytes=_MAX_MODEL_INFO_BYTES,
                                           too_large=too_large), endpoint=endpoint, repo_id=repo_id)  # fmt: skip
    try:
        info = loads(answer.content, max_bytes=_MAX_MODEL_INFO_BYTES)
        siblings = info["siblings"] if isinstance(info, dict) else None
        if not isinstance(siblings, list):
            raise TypeError("no siblings list")
        files: dict[str, int | None] = {}
        for sibling in siblings:
            name, size = sibling["rfilename"], sibling.get("size")
            if not isinstance(name, str) or not (size is None or (isinstance(size, int) and not isinstance(size, bool)
                                                                and 0 <= size < 1 << 62)):  # fmt: skip
                raise TypeError(f"bad file entry {errors.excerpt(sibling)}")
            files[name] = size
        sha = info.get("sha")
    except (JSONProblem, KeyError, TypeError, AttributeError) as e:
        raise errors.MalformedHeaderError(source, f"unexpected model info from {url}: {e}") from e
    return files, sha if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{40}", sha) else None


def _head(url: str, *, token: str | bool | None) -> object:
    """One HEAD of a Hub file, following the Hub's relative redirects (renamed repos), no retry."""
    from huggingface_hub import get_hf_file_metadata

    return get_hf_file_metadata(url, token=token, timeout=_timeout(), retry_on_errors=False)


def _retrying(call: Callable[[], T], *, endpoint: str, repo_id: str | None = None) -> T:
    """``call()``, retried for transient failures within :data:`MAX_ATTEMPTS` and :data:`RETRY_BUDGET_S`.

    Transient: HTTP 408/429/5xx, a read timeout, a connection dropped mid-answer. Not retried:
    any other HTTP answer (404 is an answer, not an outage), and a connection that cannot be
    made at all (DNS failure, refused, connect timeout): that raises :class:`HubUnreachable`
    after one attempt, and the endpoint is remembered as unreachable for :data:`UNREACHABLE_MEMO_S`.
    Neither the retries nor their waits go past the run's deadline (:func:`deadline`).
    """
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    reason = unreachable_reason(endpoint, repo_id)
    if reason is not None:
        raise HubUnreachable(reason)
    deadline = min(time.monotonic() + RETRY_BUDGET_S, time.monotonic() + _remaining(repo_id or endpoint))
    wait = 1.0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            _remaining(repo_id or endpoint)
            result = call()
        except HfHubHTTPError as e:
            response = getattr(e, "response", None)
            if getattr(response, "status_code", None) not in TRANSIENT_STATUS:
                raise
            error: BaseException = e
            delay = _retry_after(response)
            delay = wait if delay is None else delay
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as e:
            reason = _connect_reason(e)
            _unreachable[endpoint] = (time.monotonic() + UNREACHABLE_MEMO_S, reason)
            raise HubUnreachable(reason) from e
        except (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError) as e:
            _remaining(repo_id or endpoint, slack=0.05)  # a timeout cut to the deadline: say so
            error, delay = e, wait
        else:
            _unreachable.pop(endpoint, None)
            _unreachable.pop(_repo_key(endpoint, repo_id), None)
            return result
        if attempt == MAX_ATTEMPTS or time.monotonic() + delay > deadline:
            raise error
        _sleep(delay)
        wait *= 2
    raise AssertionError("unreachable")  # the loop returns or raises


def _retry_after(response: object) -> float | None:
    value = getattr(response, "headers", {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: treated as no hint


def _describe(e: BaseException) -> str:
    status = getattr(getattr(e, "response", None), "status_code", None)
    return f"HTTP {status}" if status is not None else type(e).__name__


def _connect_reason(e: BaseException) -> str:
    import httpx2

    text = str(e).splitlines()[0] if str(e) else ""
    if isinstance(e, httpx2.ConnectTimeout):
        return f"no connection within {CONNECT_TIMEOUT_S:g} s"
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text \
            or "Temporary failure in name resolution" in text:
        return "DNS lookup failed"
    if "refused" in text.lower():
        return "connection refused"
    return text or type(e).__name__


class _DropRetryLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextmanager
def _quiet_hub_retries() -> Iterator[None]:
    """Hide huggingface_hub's per-retry warning lines: our error (or answer) says what happened."""
    logger = logging.getLogger("huggingface_hub.utils._http")
    quiet = _DropRetryLines()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _read_tensors(
    repo_id: str, *, revision: str | None, token: str | bool | None, endpoint: str, main: bool, commit: str | None
) -> tuple[tuple[TensorInfo, ...] | None, str | None]:
    from huggingface_hub.errors import EntryNotFoundError

    with _hub_errors(repo_id, revision=revision, endpoint=endpoint, offline=False):
        if main:
            batched = _batched_headers(repo_id, token=token, endpoint=endpoint)
            if batched is not None:
                return batched, commit
        try:
            index, index_commit = _retrying(
                lambda: _get(repo_id, INDEX_FILE, revision=revision, token=token, endpoint=endpoint), endpoint=endpoint,
                repo_id=repo_id,
            )
        except EntryNotFoundError:
            index = None
            index_commit = None
        commit = commit or index_commit
        if index is not None:
            shards = _shards_from_index(index, repo_id)
        else:
            shards = [SINGLE_FILE]
        try:
            with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(shards))) as pool:
                # Each shard's read runs in a copy of this context: the run's deadline goes with it.
                futures = [pool.submit(contextvars.copy_context().run, _read_remote_header, repo_id, shard,
                                       revision=commit or revision, token=token, endpoint=endpoint)
                           for shard in shards]  # fmt: skip
                results = [f.result() for f in futures]
        except EntryNotFoundError:
            if index is not None:
                raise
            return None, commit
    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    for shard, (shard_tensors, shard_commit) in zip(shards, results):
        commit = commit or shard_commit
        for t in shard_tensors:
            if t.name in seen:
                raise errors.MalformedHeaderError(f"{repo_id}/{shard}", f"tensor {t.name!r} appears in two shards")
            seen.add(t.name)
            tensors.append(t)
    return tuple(tensors), commit


def _batched_headers(repo_id: str, *, token: str | bool | None, endpoint: str) -> tuple[TensorInfo, ...] | None:
    """Every shard header in one request, through the Hub's ``safetensors-metadata`` endpoint.

    The endpoint serves the default branch only (huggingface_hub
    ``HfApi.get_sharded_safetensors_metadata``); ``None`` when it answers 404 (single-file repo,
    or a mirror without it), so the caller falls back to range reads.
    """
    url = f"{endpoint}/api/models/{repo_id}/safetensors-metadata/{quote(INDEX_FILE, safe='/')}"

    source = f"{repo_id}/{INDEX_FILE} (safetensors-metadata)"

    def too_large(reason: str) -> Exception:
        return errors.MalformedHeaderError(source, reason)

    def fetch() -> _Answer | None:
        answer = _stream_get(url, token=token, max_bytes=_MAX_METADATA_BYTES, too_large=too_large,
                             accept=frozenset({404, 405, 501}))  # fmt: skip
        if answer.status in (404, 405, 501):
            if answer.headers.get("X-Error-Code") not in ("RepoNotFound", "GatedRepo"):
                return None
            _stream_get(url, token=token, max_bytes=_MAX_METADATA_BYTES, too_large=too_large)  # raises, typed
        return answer

    response = _retrying(fetch, endpoint=endpoint, repo_id=repo_id)
    if response is None:
        return None
    try:
        payload = loads(response.content, strict=True)
        headers = payload["headers"]
        if not isinstance(headers, dict):
            raise TypeError("headers is not an object")
    except (JSONProblem, KeyError, TypeError) as e:
        raise errors.MalformedHeaderError(source, f"unexpected response from {url}: {e}") from e
    tensors: list[TensorInfo] = []
    for shard in sorted(headers):
        header = headers[shard]
        if not isinstance(header, dict):
            raise errors.MalformedHeaderError(f"{repo_id}/{shard}", "header is not a JSON object")
        tensors.extend(tensors_from_header(header, source=f"{repo_id}/{shard}"))
    return tuple(tensors)


def _shards_from_index(index: bytes, repo_id: str) -> list[str]:
    source = f"{repo_id}/{INDEX_FILE}"
    try:
        data = loads(index, max_bytes=_MAX_INDEX_BYTES)
    except JSONProblem as e:
        raise errors.MalformedHeaderError(source, f"index is not valid JSON ({e})") from e
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise errors.MalformedHeaderError(source, "index has no weight_map object of tensor name -> shard file")
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        if shard.startswith("/") or ".." in shard.replace("\\", "/").split("/"):
            raise errors.MalformedHeaderError(source, f"shard path {shard!r} escapes the repo")
    return shards


def _get(
    repo_id: str, filename: str, *, revision: str | None, token: str | bool | None, endpoint: str
) -> tuple[bytes, str | None]:
    """GET the index (capped at :data:`_MAX_INDEX_BYTES`); returns its bytes and the X-Repo-Commit."""
    from huggingface_hub import hf_hub_url

    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    source = f"{repo_id}/{filename}"

    def too_large(reason: str) -> Exception:
        return errors.MalformedHeaderError(source, f"{reason}: not a safetensors index")

    answer = _stream_get(url, token=token, max_bytes=_MAX_INDEX_BYTES, too_large=too_large)
    return answer.content, _commit_header(answer)


def _read_remote_header(
    repo_id: str, shard: str, *, revision: str | None, token: str | bool | None, endpoint: str
) -> tuple[tuple[TensorInfo, ...], str | None]:
    from huggingface_hub import hf_hub_url

    source = f"{repo_id}/{shard}"
    url = hf_hub_url(repo_id, shard, revision=revision, endpoint=endpoint)

    def fetch(first: int, last: int) -> tuple[bytes, int | None, str | None]:
        return ranged_get(url, first, last, token=token, source=source, endpoint=endpoint)

    prefix, file_bytes, commit = _retrying(lambda: fetch(0, LENGTH_PREFIX_BYTES - 1), endpoint=endpoint,
                                           repo_id=repo_id)  # fmt: skip
    length = header_length(prefix, source=source)
    if file_bytes is not None and file_bytes < LENGTH_PREFIX_BYTES + length:
        raise errors.MalformedHeaderError(
            source, f"truncated: the header announces {length:,} bytes but the file is {file_bytes:,} bytes"
        )
    body, _, _ = _retrying(lambda: fetch(LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + length - 1), endpoint=endpoint,
                           repo_id=repo_id)  # fmt: skip
    if len(body) != length:
        raise errors.MalformedHeaderError(source, f"truncated: the header announces {length:,} bytes, got {len(body):,}")
    header = parse_header_json(body, source=source)
    body_bytes = None if file_bytes is None else file_bytes - LENGTH_PREFIX_BYTES - length
    return tensors_from_header(header, source=source, body_bytes=body_bytes), commit


@contextmanager
def _hub_errors(repo_id: str, *, revision: str | None, endpoint: str, offline: bool) -> Iterator[None]:
    """Translate huggingface_hub and transport errors into ours; never echo request headers (tokens)."""
    from huggingface_hub import errors as hub

    try:
        yield
    except errors.EstimatorError:
        raise  # already typed (HubConnectionError is also a ConnectionError: do not wrap it again)
    except HubUnreachable as e:
        raise errors.HubConnectionError(
            repo_id, f"could not reach {endpoint} for {repo_id!r} ({e.reason}): check the network or HF_ENDPOINT, "
            "or set HF_HUB_OFFLINE=1 to use only the cache",
        ) from e  # fmt: skip
    except hub.GatedRepoError as e:
        raise errors.GatedRepoError(repo_id) from e
    except hub.RevisionNotFoundError as e:
        raise errors.RevisionNotFoundError(
            repo_id, f"revision {revision!r} of {repo_id!r} does not exist on {endpoint}: check the branch, tag or "
            "commit, or leave revision unset for the default branch",
        ) from e  # fmt: skip
    except hub.RepositoryNotFoundError as e:
        raise _not_a_repo(repo_id, endpoint) from e
    except (hub.LocalEntryNotFoundError, hub.OfflineModeIsEnabled) as e:
        # hf_hub_download hides the HEAD's HTTP error behind "not in the local cache": use it.
        head = e.__cause__ if isinstance(e.__cause__, hub.HfHubHTTPError) else None
        status = getattr(getattr(head, "response", None), "status_code", None)
        if status in (401, 403):
            raise errors.GatedRepoError(repo_id) from e
        if status is not None and not offline:
            raise _http_error(repo_id, endpoint, status, getattr(head, "response", None)) from e
        if offline:
            raise errors.HubConnectionError(
                repo_id, f"offline mode (HF_HUB_OFFLINE=1) and {repo_id!r} is not in the huggingface_hub cache "
                "(nor in the bundled catalog): unset HF_HUB_OFFLINE, or inspect it once while online",
            ) from e  # fmt: skip
        raise errors.HubConnectionError(
            repo_id, f"could not reach {endpoint} for {repo_id!r} and it is not in the cache: check the network "
            "or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache",
        ) from e  # fmt: skip
    except hub.HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            raise errors.GatedRepoError(repo_id) from e
        raise _http_error(repo_id, endpoint, status, getattr(e, "response", None)) from e
    except hub.HFValidationError as e:
        raise errors.ModelNotFoundError(
            repo_id, f"{repo_id!r} (revision {revision!r}) is not a valid Hub repo id or revision: "
            f"{str(e).splitlines()[0]}",
        ) from e  # fmt: skip
    except _transport_errors() as e:
        raise errors.HubConnectionError(
            repo_id, f"could not reach {endpoint} for {repo_id!r} ({type(e).__name__}): check the network or "
            "HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache",
        ) from e  # fmt: skip


def _not_a_repo(repo_id: str, endpoint: str) -> errors.ModelNotFoundError:
    return errors.ModelNotFoundError(
        repo_id, f"{repo_id!r} is not a repo on {endpoint}: check the id; if it is private, set HF_TOKEN (or pass token=)"
    )


def _http_error(repo_id: str, endpoint: str, status: int | None, response: object) -> errors.SourceError:
    """The error for an HTTP answer that is not gating: only a transient one says "retry later"."""
    if status in (404, 410):
        return errors.ModelNotFoundError(
            repo_id, f"{endpoint} answered HTTP {status} (not found) for {repo_id!r}: check the id, and the "
            "file names if the repo was renamed or reorganized",
        )  # fmt: skip
    if status in TRANSIENT_STATUS:
        after = _retry_after(response) if status == 429 else None
        wait = f" and asks to wait {after:g} s" if after else ""
        return errors.HubConnectionError(
            repo_id, f"{endpoint} answered HTTP {status} for {repo_id!r}{wait} (retried within {RETRY_BUDGET_S:g} s): "
            "retry later, or set HF_HUB_OFFLINE=1 to use the cache",
        )  # fmt: skip
    return errors.HubConnectionError(
        repo_id, f"{endpoint} answered HTTP {status} for {repo_id!r}: check HF_ENDPOINT (a proxy or mirror may "
        "not serve this request), or set HF_HUB_OFFLINE=1 to use the cache",
    )  # fmt: skip


def _transport_errors() -> tuple[type[BaseException], ...]:
    # RequestError, not only TransportError: TooManyRedirects (a redirect loop) and DecodingError
    # (a corrupt gzip body) are request errors that are not transport errors.
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (("httpx2", "RequestError"), ("httpx2", "StreamError"), ("httpx", "RequestError"),
                         ("requests", "RequestException")):
        try:
            found.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


# --- A small cache of parsed headers, keyed by commit, so a second call needs no header requests
# and works offline. It lives next to the huggingface_hub cache, under HF_HOME.


def _commit_header(response: object) -> str | None:
    """The response's X-Repo-Commit if it is a commit sha; it names a cache file, so nothing else is trusted."""
    value = response.headers.get("X-Repo-Commit")  # type: ignore[attr-defined]
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40}", value) else None


def _cache_path(repo_id: str, commit: str) -> Path:
    from huggingface_hub import constants

    if not re.fullmatch(r"[0-9a-f]{40}", commit) or not looks_like_repo_id(repo_id):
        raise ValueError(f"not a cache key: {repo_id!r} @ {commit!r}")  # never a path outside the cache
    home = os.environ.get("HF_HOME") or constants.HF_HOME
    return Path(home) / "hf_gpu_estimator" / "safetensors-headers" / repo_id.replace("/", "--") / f"{commit}.json"


def _load_cached_tensors(repo_id: str, commit: str | None) -> tuple[TensorInfo, ...] | None:
    if commit is None or not re.fullmatch(r"[0-9a-f]{40}", commit):
        return None
    from hf_gpu_estimator.spec import DTYPE_BYTES

    path = _cache_path(repo_id, commit)
    try:
        data = loads(path.read_bytes())
        if not isinstance(data, Mapping) or data.get("version") != _CACHE_VERSION:
            raise JSONProblem(f"not a version-{_CACHE_VERSION} header cache entry")
        entries = data.get("tensors")
        if not isinstance(entries, list):
            raise JSONProblem("no tensors list")
        tensors = []
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                    and entry[1] in DTYPE_BYTES and isinstance(entry[2], list)
                    and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in entry[2])):
                raise JSONProblem(f"bad tensor entry {str(entry)[:80]}")
            tensors.append(TensorInfo(name=entry[0], dtype=entry[1], shape=tuple(entry[2])))
    except FileNotFoundError:
        return None
    except (OSError, JSONProblem) as e:
        # A damaged entry (a crash mid-write on an old version, disk trouble, a hand edit) is
        # re-fetched, never trusted; say so once, since it costs the user the header requests.
        import warnings

        warnings.warn(f"ignoring the damaged header cache file {path} ({e}); the headers are read again",
                      RuntimeWarning, stacklevel=3)  # fmt: skip
        return None
    return tuple(tensors)


def _store_cached_tensors(repo_id: str, commit: str, tensors: tuple[TensorInfo, ...]) -> None:
    import threading

    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        return
    path = _cache_path(repo_id, commit)
    # Written to a unique temporary name then renamed: a reader sees the old entry or the whole
    # new one, never half of one, even with two processes (or threads) writing the same commit.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"version": _CACHE_VERSION, "tensors": [[t.name, t.dtype, list(t.shape)] for t in tensors]}))
        os.replace(tmp, path)
    except OSError:
        # A read-only HF_HOME only costs the next call its header requests.
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


#: The Hub's model search is asked for this many of its most-downloaded matches (a few KB of answer).
_SEARCH_LIMIT = 20
_MAX_SEARCH_BYTES = 1 << 20


def similar_repo_ids(repo_id: str, *, token: str | bool | None = None, limit: int = 3) -> tuple[str, ...]:
    """Hub repos whose ids are close to ``repo_id``, through the Hub's model search.

    One search request (``/api/models?search=...``, as ``HfApi.list_models`` sends it) on the repo
    name (the Hub matches substrings), and, when that finds nothing, one on its longest word; the
    matches are ranked by similarity to the whole id. Each answer is read with a cap, within the
    run's deadline. Best-effort: a search that fails adds no suggestions (the caller's error stands).
    """
    from huggingface_hub.errors import HfHubHTTPError

    name = repo_id.rsplit("/", 1)[-1]
    words = sorted(re.split(r"[-_.]", name), key=len, reverse=True)
    queries = [name] + ([words[0]] if words and words[0] != name and len(words[0]) >= 3 else [])
    endpoint = _endpoint()
    found: list[str] = []

    def too_large(reason: str) -> Exception:
        return errors.HubConnectionError(repo_id, f"model search: {reason}")

    for query in queries:
        url = f"{endpoint}/api/models?search={quote(query, safe='')}&sort=downloads&direction=-1&limit={_SEARCH_LIMIT}"
        try:
            answer = _stream_get(url, token=token, max_bytes=_MAX_SEARCH_BYTES, too_large=too_large)
            models = loads(answer.content, max_bytes=_MAX_SEARCH_BYTES)
        except (HfHubHTTPError, JSONProblem, *_transport_errors()):
            return ()
        found = [m["id"] for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)
                 and m["id"].lower() != repo_id.lower()] if isinstance(models, list) else []  # fmt: skip
        if found:
            break
    from hf_gpu_estimator.sources.catalog import rank_similar

    return rank_similar(repo_id, found[:_SEARCH_LIMIT], limit=limit)
