"""``hfge census``: run the census over a model set (threads for the Hub reads, a per-row cache to resume)
and write it as a dataset (CSV, Parquet with pyarrow, a dataset card, plots), optionally to the Hub.

The rows themselves are pure arithmetic (:mod:`hf_gpu_estimator.planner.census`); this module does the
I/O around them.

>>> from hf_gpu_estimator.sources.census import ModelRef
>>> c = run_census([ModelRef(id="gpt2")], parse_jobs("inference:ctx=1024"), gpus=("RTX-4090",), offline=True)
>>> c.rows[0].gpu_class_gb, c.rows[0].source
(8, 'catalog')
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TextIO

from hf_gpu_estimator.errors import EstimatorError, InvalidArgumentError, MissingDependencyError
from hf_gpu_estimator.planner.census import (
    DEFAULT_GPUS,
    GPU_CLASSES_GB,
    CensusRow,
    Job,
    census_row,
    class_capacity_bytes,
    job_refused_row,
    parse_jobs,
    refused_rows,
)
from hf_gpu_estimator.sources.census import ModelRef

__all__ = ["CACHE_FILE", "Census", "census_rows", "push_to_hub", "read_rows", "run_census", "write_dataset"]

#: Rows finished so far, one JSON line per model, in the output folder: a census interrupted and
#: run again with the same grid skips them. Not uploaded by ``--push-to-hub``.
CACHE_FILE = ".census-cache.jsonl"
DATA_STEM = "census"
#: Concurrent Hub reads: each model costs 3 to 5 small requests (HEAD + config.json + headers);
#: 8 at once keeps a connection pool busy without tripping the Hub's rate limits.
DEFAULT_WORKERS = 8
#: Below this many models a second process costs more to start (about 0.5 s to import) than it saves.
PROCESSES_FROM = 64
#: Processes at most by default: more would contend with the Hub reads' threads for little gain.
MAX_PROCESSES = 4
_INT_FIELDS = {"parameters", "active_parameters", "trainable_parameters", "memory_low_bytes", "memory_bytes",
               "memory_high_bytes", "gpu_class_gb", "cheapest_num_gpus"}
_FLOAT_FIELDS = {"cheapest_usd_per_hour", "tokens_per_s", "usd_per_million_tokens"}


@dataclass(frozen=True, kw_only=True)
class Census:
    """A finished census: its rows (model order, then job order) and what produced them."""

    rows: tuple[CensusRow, ...]
    models: str
    jobs: tuple[Job, ...]
    gpus: tuple[str, ...]
    date: str
    versions: Mapping[str, str]
    seconds: float = 0.0
    resumed: int = 0

    @property
    def model_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.model for r in self.rows))


def versions() -> dict[str, str]:
    """hf-gpu-estimator's version and, where installed, transformers' and huggingface_hub's."""
    from importlib import metadata

    from hf_gpu_estimator import __version__

    out = {"hf-gpu-estimator": __version__}
    for package in ("transformers", "huggingface_hub"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def _fingerprint(jobs: Sequence[Job], gpus: Sequence[str], version: str) -> str:
    """What a cached row depends on: the grid and the estimator's version."""
    key = json.dumps({"jobs": [j.name for j in jobs], "gpus": list(gpus), "version": version})
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def _load_cache(path: Path, fingerprint: str) -> dict[str, list[CensusRow]]:
    """Rows of a previous run of the same grid; a line cut short by an interruption is skipped."""
    found: dict[str, list[CensusRow]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return found
    for line in lines:
        try:
            entry = json.loads(line)
            if entry.get("fingerprint") != fingerprint:
                continue
            found[entry["model"]] = [CensusRow.from_record(r) for r in entry["rows"]]
        except (ValueError, KeyError, TypeError):
            continue
    return found


class _Progress:
    """``census: 120/320 models, 4 refused, 12 s`` rewritten in place on a terminal's stderr; silent otherwise."""

    def __init__(self, total: int, *, stream: TextIO | None, done: int = 0):
        self.total, self.done, self.refused = total, done, 0
        self.stream = stream
        self.start = time.monotonic()
        self.last = 0.0

    def update(self, rows: Sequence[CensusRow]) -> None:
        self.done += 1
        self.refused += any(r.refused for r in rows)
        now = time.monotonic()
        if self.stream is not None and (now - self.last > 0.1 or self.done == self.total):
            self.last = now
            width = 30
            filled = width * self.done // max(self.total, 1)
            self.stream.write(f"\rcensus [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} models, "
                              f"{self.refused} with refusals, {now - self.start:.0f} s ")
            self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


#: warnings.catch_warnings swaps process-wide state: one estimate at a time records its warnings, so a
#: threaded census gives each row its own notes (the estimate is ~1 ms of a row's ~10 ms).
_WARNINGS_LOCK = threading.Lock()


def census_rows(spec: Any, jobs: Sequence[Job], *, gpus: Sequence[str] = DEFAULT_GPUS,
                created_at: str | None = None) -> list[CensusRow]:
    """One row per job for ``spec`` (a ModelSpec, or anything :func:`~hf_gpu_estimator.estimate` takes); a job
    the estimator refuses is a refused row with the reason, and its warnings become the row's notes."""
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.hardware import get_gpu
    from hf_gpu_estimator.sources import inspect_model

    spec = inspect_model(spec)
    resolved = tuple(get_gpu(g) for g in gpus)
    capacities = {gb: class_capacity_bytes(gb) for gb in GPU_CLASSES_GB}
    rows = []
    for job in jobs:
        try:
            with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                est = estimate(spec, mode=job.mode, **job.options)
            rows.append(census_row(est, job, resolved, capacities=capacities, created_at=created_at,
                                   notes=[str(w.message) for w in caught]))
        except EstimatorError as e:
            rows.append(job_refused_row(spec, job, e, [g.name for g in resolved], created_at=created_at))
    return rows


def _resolver(offline: bool, token: str | bool | None) -> Callable[[str], Any]:
    if offline:
        from hf_gpu_estimator.errors import ModelNotFoundError
        from hf_gpu_estimator.sources.catalog import lookup

        def from_catalog(model_id: str) -> Any:
            spec = lookup(model_id)
            if spec is None:
                raise ModelNotFoundError(model_id, f"{model_id!r} is not in the bundled catalog (offline census)")
            return spec

        return from_catalog
    from hf_gpu_estimator.sources import inspect_model

    return lambda model_id: inspect_model(model_id, token=token)  # type: ignore[arg-type]


def _model_rows(ref: ModelRef, jobs: Sequence[Job], gpus: Sequence[str],
                resolve: Callable[[str], Any]) -> list[CensusRow]:
    """A model's rows; a model that cannot be read is refused rows with the reason, never an exception."""
    try:
        spec = resolve(ref.id)
    except EstimatorError as e:
        return refused_rows(ref.id, jobs, e, gpus=gpus, created_at=ref.created_at)
    except Exception as e:  # noqa: BLE001  a census of thousands of repos outlives one unforeseen failure: the row says what
        return refused_rows(ref.id, jobs, f"internal error ({type(e).__name__}): {str(e).splitlines()[0] if str(e) else ''}",
                            gpus=gpus, created_at=ref.created_at)  # fmt: skip
    rows = census_rows(spec, jobs, gpus=gpus, created_at=ref.created_at)
    if spec.id != ref.id:  # a catalog alias, a renamed repo: the row keeps the id that was asked
        rows = [replace(r, model=ref.id) for r in rows]
    return rows


def _cpus() -> int:
    """CPUs this process may run on (its affinity, which containers and taskset narrow), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _threaded_rows(refs: Sequence[ModelRef], jobs: Sequence[Job], gpus: Sequence[str], resolve: Callable[[str], Any],
                   workers: int) -> Iterator[tuple[ModelRef, list[CensusRow]]]:
    """Each model's rows as they finish, ``workers`` models read at once (in input order with one worker)."""
    if workers == 1:
        for ref in refs:
            yield ref, _model_rows(ref, jobs, gpus, resolve)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="census") as pool:
        # At most 2 x workers reads in flight: a listing of 100,000 ids is not 100,000 futures.
        pending: dict[Future[list[CensusRow]], ModelRef] = {}
        try:
            for ref in refs:
                pending[pool.submit(_model_rows, ref, jobs, gpus, resolve)] = ref
                while len(pending) >= 2 * workers:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        yield pending.pop(future), future.result()
            for future in list(pending):
                yield pending.pop(future), future.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _chunk_rows(refs: Sequence[ModelRef], jobs: Sequence[Job], gpus: Sequence[str], offline: bool,
                token: str | bool | None, workers: int) -> list[tuple[ModelRef, list[CensusRow]]]:
    """A child process's share: its models read by its own threads (specs never cross processes, rows do)."""
    return list(_threaded_rows(refs, jobs, gpus, _resolver(offline, token), workers))


def _in_processes(todo: Sequence[ModelRef], jobs: Sequence[Job], gpus: Sequence[str], *, offline: bool,
                  token: str | bool | None, workers: int, processes: int,
                  finish: Callable[[ModelRef, list[CensusRow]], None]) -> None:
    """The rows of ``todo`` in ``processes`` processes (the arithmetic holds the GIL: threads share one core).

    Chunks of a few dozen models keep every process busy to the end and the cache written as they finish.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    size = max(1, min(32, len(todo) // (4 * processes)))
    chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
    # spawn, not fork: forking a process that runs threads (a Hub client, a web server) can deadlock the child.
    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_chunk_rows, chunk, jobs, gpus, offline, token, workers) for chunk in chunks]
        try:
            for future in as_completed(futures):
                for ref, rows in future.result():
                    finish(ref, rows)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _in_ray(todo: Sequence[ModelRef], jobs: Sequence[Job], gpus: Sequence[str], *, offline: bool,
            token: str | bool | None, finish: Callable[[ModelRef, list[CensusRow]], None]) -> None:
    """The rows of ``todo`` as Ray tasks, one model each (its jobs' estimates or traces), streamed into
    ``finish`` as they complete. Joins the cluster at ``RAY_ADDRESS`` (Ray's own variable), else starts a
    local one for the run; a cluster that was already initialized is kept."""
    try:
        import ray
    except ImportError as e:
        raise MissingDependencyError("ray", "ray", "census --backend ray") from e

    started = not ray.is_initialized()
    if started:
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, include_dashboard=False, log_to_driver=False)
    task = ray.remote(_chunk_rows)
    pending = {task.remote([ref], jobs, gpus, offline, token, 1): ref for ref in todo}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            pending.pop(ready[0])
            for ref, rows in ray.get(ready[0]):
                finish(ref, rows)
    except BaseException:
        for future in pending:
            ray.cancel(future)
        raise
    finally:
        if started:
            ray.shutdown()


#: Where a census computes its rows: this machine's processes, or Ray tasks (``pip install
#: 'hf-gpu-estimator[ray]'``) for a census that outgrows one machine (exact mode: seconds of CPU a row).
BACKENDS = ("local", "ray")


def run_census(refs: Iterable[ModelRef], jobs: Sequence[Job] | None = None, *, gpus: Sequence[str] = DEFAULT_GPUS,
               models: str = "", offline: bool = False, token: str | bool | None = None,
               workers: int | None = None, processes: int | None = None,
               cache_dir: str | os.PathLike[str] | None = None, progress: bool | None = None,
               resolve: Callable[[str], Any] | None = None, backend: str = "local") -> Census:
    """Every model × job as a row.

    Args:
        refs: the model set (:func:`hf_gpu_estimator.sources.census.model_refs`).
        jobs: the grid (default :data:`~hf_gpu_estimator.planner.census.DEFAULT_JOBS`).
        gpus: catalog GPU names to count and price.
        models: how the set was asked (``catalog``, a file, ``hub:TAG:N``), for the card.
        offline: read models from the bundled catalog only (no network).
        token: Hub token for gated repos.
        workers: concurrent model reads per process (default 1 offline, where the work is arithmetic,
            else :data:`DEFAULT_WORKERS`); each read keeps the Hub layer's retry rules.
        processes: processes sharing the models (the arithmetic holds the GIL, so threads use one core);
            default 1 for fewer than :data:`PROCESSES_FROM` models to compute, else up to
            :data:`MAX_PROCESSES` of the CPUs. Not with a custom ``resolve``.
        cache_dir: keep finished models in ``cache_dir/.census-cache.jsonl`` and skip those already there.
        progress: a progress line on stderr (default: when stderr is a terminal).
        resolve: model id -> ModelSpec (default: the catalog offline, else ``inspect_model``).
        backend: ``local`` (threads and processes here) or ``ray`` (one Ray task per model, at ``RAY_ADDRESS``
            or a local Ray instance; not with a custom ``resolve``).
    """
    from hf_gpu_estimator.hardware import get_gpu

    jobs = tuple(jobs) if jobs is not None else parse_jobs()
    gpu_names = tuple(dict.fromkeys(get_gpu(g).name for g in gpus))
    refs = tuple(dict.fromkeys(refs))
    workers = workers if workers is not None else (1 if offline else DEFAULT_WORKERS)
    for name, value in (("workers", workers), ("processes", processes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidArgumentError(name, value, "an integer >= 1")
    if backend not in BACKENDS:
        raise InvalidArgumentError("backend", backend, " or ".join(BACKENDS))
    if backend == "ray" and resolve is not None:
        raise InvalidArgumentError("backend", backend, "local with a custom resolve (it cannot cross machines)")
    if processes is not None and processes > 1 and resolve is not None:
        raise InvalidArgumentError("processes", processes, "1 with a custom resolve (it cannot cross processes)")
    custom = resolve is not None
    resolve = resolve or _resolver(offline, token)
    info = versions()
    fingerprint = _fingerprint(jobs, gpu_names, info["hf-gpu-estimator"])
    cache_path = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
    done: dict[str, list[CensusRow]] = {}
    if cache_path is not None:
        cached = _load_cache(cache_path, fingerprint)
        done = {r.id: cached[r.id] for r in refs if r.id in cached}
        cache_path.parent.mkdir(parents=True, exist_ok=True)
    resumed = len(done)
    todo = [r for r in refs if r.id not in done]
    if processes is None:
        processes = 1 if custom or len(todo) < PROCESSES_FROM else min(MAX_PROCESSES, _cpus())
    show = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(len(refs), stream=sys.stderr if show else None, done=resumed)
    start = time.monotonic()
    lock = threading.Lock()
    cache = cache_path.open("a", encoding="utf-8") if cache_path is not None else None

    def finish(ref: ModelRef, rows: list[CensusRow]) -> None:
        with lock:
            done[ref.id] = rows
            if cache is not None:
                cache.write(json.dumps({"fingerprint": fingerprint, "model": ref.id,
                                        "rows": [r.to_record() for r in rows]}) + "\n")
                cache.flush()
            bar.update(rows)

    try:
        if backend == "ray":
            _in_ray(todo, jobs, gpu_names, offline=offline, token=token, finish=finish)
        elif processes > 1:
            _in_processes(todo, jobs, gpu_names, offline=offline, token=token, workers=workers,
                          processes=processes, finish=finish)
        else:
            for ref, rows in _threaded_rows(todo, jobs, gpu_names, resolve, workers):
                finish(ref, rows)
    finally:
        if cache is not None:
            cache.close()
        bar.close()
    rows = tuple(row for ref in refs for row in done[ref.id])
    return Census(rows=rows, models=models, jobs=jobs, gpus=gpu_names,
                  date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"), versions=info,
                  seconds=time.monotonic() - start, resumed=resumed)


# --- the dataset ------------------------------------------------------------------------------


def _columns(census: Census) -> list[str]:
    names = [f.name for f in fields(CensusRow)]
    at = names.index("min_gpus")
    return names[:at] + [f"min_gpus_{g}" for g in census.gpus] + names[at + 1:]


def parquet_available() -> bool:
    """Whether pyarrow (the ``census`` extra) is importable: Parquet is written only then."""
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


def write_dataset(census: Census, out_dir: str | os.PathLike[str], *, parquet: bool | None = None,
                  plots: bool = True) -> list[Path]:
    """Write ``census.csv`` (always), ``census.parquet`` (with pyarrow), ``README.md`` (the dataset card)
    and ``plots/*.png`` (with matplotlib) into ``out_dir``; returns the paths written.

    Args:
        parquet: ``None``: when pyarrow is installed; ``True``: required (an error naming the extra if absent).
        plots: draw the plots (skipped without a note when matplotlib is absent and ``plots`` is the default).
    """
    from hf_gpu_estimator.census_report import dataset_card

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns = _columns(census)
    records = [r.to_record() for r in census.rows]
    written = []
    csv_path = out / f"{DATA_STEM}.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in rec.items()} for rec in records)
    written.append(csv_path)
    if parquet or (parquet is None and parquet_available()):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as e:
            raise MissingDependencyError("pyarrow", "census", "Parquet output") from e
        table = pa.Table.from_pylist([{c: rec.get(c) for c in columns} for rec in records])
        pq.write_table(table, out / f"{DATA_STEM}.parquet")
        written.append(out / f"{DATA_STEM}.parquet")
    images: list[Path] = []
    if plots:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is not None:
            from hf_gpu_estimator.census_plots import draw_all

            images = draw_all(census.rows, out / "plots")
    card = out / "README.md"
    card.write_text(dataset_card(census, data_files=[p.name for p in written],
                                 images=[p.relative_to(out).as_posix() for p in images]), encoding="utf-8")
    return [*written, card, *images]


def read_rows(path: str | os.PathLike[str]) -> tuple[CensusRow, ...]:
    """The rows of a ``census.csv`` written by :func:`write_dataset` (empty cells are ``None``)."""
    rows = []
    with Path(path).open(encoding="utf-8", newline="") as f:
        for record in csv.DictReader(f):
            typed: dict[str, Any] = {}
            for key, text in record.items():
                if text == "":
                    typed[key] = None
                elif key in _INT_FIELDS or key.startswith("min_gpus_"):
                    typed[key] = int(text)
                elif key in _FLOAT_FIELDS:
                    typed[key] = float(text)
                else:
                    typed[key] = text
            rows.append(CensusRow.from_record(typed))
    return tuple(rows)


def push_to_hub(out_dir: str | os.PathLike[str], repo_id: str, *, token: str | bool | None = None,
                private: bool = False) -> str:
    """Upload the dataset folder to a Hub dataset repo (created when missing); returns its URL.

    The resume cache (:data:`CACHE_FILE`) stays local. Errors are the Hub layer's typed errors.
    """
    from hf_gpu_estimator.sources.census import upload_folder

    return upload_folder(out_dir, repo_id, token=token, private=private, ignore=(CACHE_FILE, f"{CACHE_FILE}.*"))
