"""Where a ModelSpec comes from: the Hub, a folder, a file, a config, a live module or the catalog.

This is the only layer that does I/O. Importing it loads neither torch nor huggingface_hub;
each source imports what it needs when called.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from hf_gpu_estimator import errors
from hf_gpu_estimator.errors import excerpt
from hf_gpu_estimator.spec import ModelSpec

__all__ = ["inspect_model"]

ModelSource = str | os.PathLike | Mapping | ModelSpec | object


def inspect_model(source: ModelSource, *, revision: str | None = None, token: str | None = None) -> ModelSpec:
    """Describe a model without loading its weights.

    Strings resolve in this order: an existing local path (a folder with config.json and
    safetensors weights, or a single ``.safetensors`` file); else a Hub id read through
    huggingface_hub (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE`` and its cache apply);
    else, when the Hub is unreachable, offline, or the repo is gated, the bundled catalog.

    Args:
        source: A Hub id (``org/name``), a path, a config dict, a ``transformers.PretrainedConfig``,
            a live ``torch.nn.Module``, or a ModelSpec (returned as is).
        revision: Hub branch, tag or commit (Hub ids only).
        token: Hub token for gated or private repos; default ``HF_TOKEN`` or the saved login.

    Returns:
        The ModelSpec, with ``provenance`` saying where each fact came from and ``assumptions``
        listing every correction and fallback.

    Raises:
        ModelNotFoundError: no such path or repo (and no catalog entry).
        RevisionNotFoundError: the repo has no such revision.
        GatedRepoError: gated or private and not authorized (and no catalog entry).
        HubConnectionError: the Hub is unreachable or offline mode is on, the repo is not cached,
            and the catalog has no entry.
        MalformedConfigError, MalformedHeaderError: unreadable config.json or safetensors header.
        UnsupportedArchitectureError: only a config is available and its model_type is unknown.
        InvalidArgumentError: ``source`` is of no supported kind.
    """
    from hf_gpu_estimator.sources.config import config_to_dict
    from hf_gpu_estimator.sources.module import is_module

    if isinstance(source, ModelSpec):
        return source
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if isinstance(text, bytes):
            raise errors.InvalidArgumentError("model", text, "a str path or Hub id, not bytes")
        path = Path(text).expanduser()
        try:
            exists = path.exists()
        except (OSError, ValueError):  # a name too long for the OS, an embedded NUL byte
            exists = False
        if exists:
            if revision is not None:
                raise errors.InvalidArgumentError("revision", revision, "unset for a local path", hint=str(path))
            if path.is_file() and path.suffix.lower() == ".gguf":
                from hf_gpu_estimator.sources.gguf import read_local_gguf

                return read_local_gguf(path)
            return _from_local(path)
        from hf_gpu_estimator.sources.gguf import is_gguf_reference, read_hub_gguf

        if is_gguf_reference(text):
            return read_hub_gguf(text, revision=revision, token=token)
        if _names_a_file(text):  # a path that does not exist: say so, never "could not reach the Hub"
            raise errors.ModelNotFoundError(text, f"no such file or folder: {excerpt(text)}; check the path"
                                            + _did_you_mean(text, hub=False))
        from hf_gpu_estimator.sources.hub import with_deadline

        # One deadline for every request of this inspection, the did-you-mean search included.
        return with_deadline(lambda: _from_hub(text, revision=revision, token=token), source=text[:200])
    if is_module(source):
        from hf_gpu_estimator.sources.module import spec_from_module

        return spec_from_module(source)
    if isinstance(source, Mapping) or callable(getattr(source, "to_dict", None)):
        from hf_gpu_estimator.sources.headers import build_spec

        config = config_to_dict(source)
        name = config.get("_name_or_path")
        model_id = name if isinstance(name, str) and name else f"{config.get('model_type', 'model')} (config)"
        return build_spec(model_id=model_id, config=config, tensors=None)
    raise errors.InvalidArgumentError(
        "model", type(source).__name__,
        "a Hub id, a path, a config dict, a PretrainedConfig, a torch.nn.Module or a ModelSpec",
    )  # fmt: skip


def _from_local(path: Path) -> ModelSpec:
    from hf_gpu_estimator.sources.headers import build_spec
    from hf_gpu_estimator.sources.local import read_local

    if path.is_dir() and not (path / "config.json").is_file():
        from hf_gpu_estimator.sources import meta

        params_path = meta.find_local_params(path)
        if params_path is not None:
            return _from_local_meta(path, params_path)
    checkpoint = read_local(path)
    return build_spec(model_id=str(path), config=checkpoint.config, tensors=checkpoint.tensors,
                      assumptions=checkpoint.notes)  # fmt: skip


def _from_local_meta(folder: Path, params_path: Path) -> ModelSpec:
    from hf_gpu_estimator.sources import meta

    try:
        with params_path.open("rb") as f:  # one byte past params_from_bytes' limit: it refuses, nothing more is read
            params = meta.params_from_bytes(f.read(meta.MAX_PARAMS_BYTES + 1), source=str(params_path))

        def tokenizer() -> tuple[str, bytes] | None:
            found = meta.local_tokenizer(params_path)
            if found is None or found.stat().st_size > meta.MAX_TOKENIZER_BYTES:
                return None
            return str(found), found.read_bytes()

        sizes = {p.name: p.stat().st_size for p in params_path.parent.glob("consolidated.*.pth") if p.is_file()}
    except OSError as e:
        raise errors.SourceError(f"cannot read {e.filename or folder}: {e.strerror or type(e).__name__}") from e
    return meta.build_meta_spec(model_id=str(folder), params=params, params_source=str(params_path),
                                read_tokenizer=tokenizer, file_sizes=sizes)  # fmt: skip


def _from_hub_meta(checkpoint: object, *, token: str | None) -> ModelSpec:
    from hf_gpu_estimator.sources import meta
    from hf_gpu_estimator.sources.hub import read_hub_file

    repo_id, name = checkpoint.repo_id, checkpoint.meta_params_file  # type: ignore[attr-defined]
    folder = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
    files = checkpoint.file_sizes or {}  # type: ignore[attr-defined]

    def tokenizer() -> tuple[str, bytes] | None:
        for candidate in (f"{folder}tokenizer.model", "tokenizer.model", f"{folder}tokenizer.json", "tokenizer.json"):
            if candidate in files:
                data = read_hub_file(repo_id, candidate, revision=checkpoint.commit, token=token,  # type: ignore[attr-defined]
                                     max_bytes=meta.MAX_TOKENIZER_BYTES, size=files[candidate])  # fmt: skip
                return f"{repo_id}/{candidate}", data
        return None

    return meta.build_meta_spec(
        model_id=repo_id, params=checkpoint.meta_params, params_source=f"{repo_id}/{name}",  # type: ignore[attr-defined]
        read_tokenizer=tokenizer, revision=checkpoint.commit, notes=checkpoint.notes,  # type: ignore[attr-defined]
        file_sizes={k: v for k, v in files.items() if k.startswith(folder)},
    )  # fmt: skip


def _from_hub(repo_id: str, *, revision: str | None, token: str | None) -> ModelSpec:
    from hf_gpu_estimator.sources.headers import build_spec
    from hf_gpu_estimator.sources.hub import looks_like_repo_id, read_hub

    if not looks_like_repo_id(repo_id):
        raise errors.ModelNotFoundError(
            repo_id, f"{excerpt(repo_id)} is neither an existing file or folder nor a Hub repo id (org/name); "
            "check the path"
            + _did_you_mean(repo_id, hub=False)
        )  # fmt: skip
    try:
        checkpoint = read_hub(repo_id, revision=revision, token=token)
        if checkpoint.meta_params is not None:
            return _from_hub_meta(checkpoint, token=token)
        return build_spec(model_id=repo_id, config=checkpoint.config, tensors=checkpoint.tensors,
                          revision=checkpoint.commit, assumptions=checkpoint.notes)  # fmt: skip
    except errors.RevisionNotFoundError:
        raise  # the catalog describes the default branch only
    except errors.HubConnectionError as e:
        from huggingface_hub import constants

        from hf_gpu_estimator.sources.hub import unreachable_reason

        reason = unreachable_reason(repo_id=repo_id)
        why = "offline mode (HF_HUB_OFFLINE=1) is on and the repo is not cached" if constants.is_offline_mode() else (
            f"the Hub could not be reached ({reason})" if reason else f"the Hub could not be reached: {e}")  # fmt: skip
        fallback = _catalog(repo_id, reason=why, notice=not constants.is_offline_mode())
        if fallback is None:
            _raise_with_suggestions(e, repo_id, hub=False)
        return fallback
    except errors.GatedRepoError as e:
        fallback = _catalog(repo_id, reason="the repo is gated and no authorized token was given")
        if fallback is None:
            raise errors.GatedRepoError(
                repo_id, f"{repo_id!r} is gated or private: accept its licence on the Hub and set HF_TOKEN "
                "(or pass token=); it has no bundled catalog entry to fall back on",
            ) from e  # fmt: skip
        return fallback
    except errors.ModelNotFoundError as e:
        fallback = _catalog(repo_id, reason=f"the Hub answered that {repo_id!r} is not a repo, and the catalog knows that name")
        if fallback is None:
            _raise_with_suggestions(e, repo_id, hub=True, token=token)
        return fallback
    except errors.UnsupportedArchitectureError:
        # Only config.json was available (offline, no header cache) and it has no dimension model.
        fallback = _catalog(repo_id, reason="only config.json was available and its model_type has no dimension model")
        if fallback is None:
            raise
        return fallback


#: Suffixes of the model files a path may name (a Hub repo id never ends in one).
_FILE_SUFFIXES = (".json", ".gguf", ".safetensors", ".bin", ".pth", ".pt")


def _names_a_file(text: str) -> bool:
    """Whether ``text`` (no such path, no GGUF Hub reference) is written as a path: ``./``, ``../``, ``/``,
    ``~``, a backslash, or a model file's suffix."""
    return (text.startswith(("./", "../", "/", "~", ".\\", "..\\")) or "\\" in text
            or text.lower().endswith(_FILE_SUFFIXES))


def _did_you_mean(repo_id: str, *, hub: bool, token: str | bool | None = None) -> str:
    """``"; did you mean a, b?"`` from the catalog and, when ``hub``, the Hub's model search; or ``""``.

    An id longer than :data:`~hf_gpu_estimator.constants.MAX_SUGGEST_CHARS` (the Hub's ids stop at 96
    characters) is no typo of a real one, and comparing it costs time quadratic in its length: none.
    """
    from hf_gpu_estimator.constants import MAX_SUGGEST_CHARS
    from hf_gpu_estimator.sources.catalog import similar_ids

    if len(repo_id) > MAX_SUGGEST_CHARS:
        return ""

    found = list(similar_ids(repo_id))
    if hub:
        from hf_gpu_estimator.sources.hub import similar_repo_ids

        found += similar_repo_ids(repo_id, token=token)
    found = list(dict.fromkeys(f for f in found if f.lower() != repo_id.lower()))[:4]
    return f"; did you mean {', '.join(found)}?" if found else ""


def _raise_with_suggestions(error: errors.SourceError, repo_id: str, *, hub: bool,
                            token: str | bool | None = None) -> NoReturn:  # fmt: skip
    """Raise ``error`` again, with "did you mean" appended when there is something close."""
    hint = _did_you_mean(repo_id, hub=hub, token=token)
    if not hint:
        raise error
    raise type(error)(repo_id, str(error) + hint) from error


#: The catalog-fallback lines already logged in this process.
_NOTICED: set[str] = set()


def _catalog(repo_id: str, *, reason: str, notice: bool = False) -> ModelSpec | None:
    try:
        from hf_gpu_estimator.sources.catalog import lookup
    except ModuleNotFoundError as e:  # the catalog package is optional data while it is being built
        if e.name != "hf_gpu_estimator.sources.catalog":
            raise
        return None
    entry = lookup(repo_id)
    if entry is None:
        return None
    from hf_gpu_estimator.sources.catalog import catalog_entry

    originals = {r.lower() for r in (catalog_entry(repo_id) or {}).get("original_repos", ())}
    twin = (f"; {repo_id} is Meta's original release of the same weights (params.json + consolidated.*.pth)"
            if repo_id.strip().lower() in originals else "")  # fmt: skip
    message = f"facts from the bundled catalog ({entry.id}) because {reason}{twin}"
    if notice and message not in _NOTICED:
        # The Hub failed unasked (offline mode and gating are the user's own settings): one line on
        # stderr (logging's last-resort handler when the application configures none) says the
        # answer is the catalog's before anyone reads it; once per process, however many estimates
        # ask (the result's assumptions still say it every time).
        _NOTICED.add(message)
        logging.getLogger("hf_gpu_estimator").warning("%s", message)
    return replace(entry, assumptions=(message, *entry.assumptions))
