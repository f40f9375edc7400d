"""Where a ModelSpec comes from: the Hub, a folder, a file, a config, a live module or the catalog.

This is the only layer that does I/O. Importing it loads neither torch nor huggingface_hub;
each source imports what it needs when called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from hf_gpu_estimator import errors
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
        return _from_hub(text, revision=revision, token=token)
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

    checkpoint = read_local(path)
    return build_spec(model_id=str(path), config=checkpoint.config, tensors=checkpoint.tensors,
                      assumptions=checkpoint.notes)  # fmt: skip


def _from_hub(repo_id: str, *, revision: str | None, token: str | None) -> ModelSpec:
    from hf_gpu_estimator.sources.headers import build_spec
    from hf_gpu_estimator.sources.hub import looks_like_repo_id, read_hub

    if not looks_like_repo_id(repo_id):
        raise errors.ModelNotFoundError(
            repo_id, f"{repo_id!r} is neither an existing file or folder nor a Hub repo id (org/name); check the path"
        )
    if revision is None and _unreachable_with_catalog_entry(repo_id):
        fallback = _catalog(repo_id, reason=f"the Hub did not answer within {PROBE_TIMEOUT_S:g} s")
        if fallback is not None:
            return fallback
    try:
        checkpoint = read_hub(repo_id, revision=revision, token=token)
        return build_spec(model_id=repo_id, config=checkpoint.config, tensors=checkpoint.tensors,
                          revision=checkpoint.commit, assumptions=checkpoint.notes)  # fmt: skip
    except errors.RevisionNotFoundError:
        raise  # the catalog describes the default branch only
    except errors.HubConnectionError:
        from huggingface_hub import constants

        why = "offline mode (HF_HUB_OFFLINE=1) is on and the repo is not cached" if constants.is_offline_mode() else (
            "the Hub could not be reached and the repo is not cached")  # fmt: skip
        fallback = _catalog(repo_id, reason=why)
        if fallback is None:
            raise
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
        fallback = _catalog(repo_id, reason=f"the Hub answered: {e}")
        if fallback is None:
            raise
        return fallback
    except errors.UnsupportedArchitectureError:
        # Only config.json was available (offline, no header cache) and it has no dimension model.
        fallback = _catalog(repo_id, reason="only config.json was available and its model_type has no dimension model")
        if fallback is None:
            raise
        return fallback


#: One quick request, no retries, before huggingface_hub's download (whose retries with backoff take
#: about 20 s when there is no network at all): only for ids the catalog can answer, not cached.
PROBE_TIMEOUT_S = 3.0
_REACHABLE: dict[str, bool] = {}


def _unreachable_with_catalog_entry(repo_id: str) -> bool:
    from huggingface_hub import constants, try_to_load_from_cache

    from hf_gpu_estimator.sources import catalog
    from hf_gpu_estimator.sources.hub import _endpoint

    if constants.is_offline_mode() or catalog.catalog_entry(repo_id) is None:
        return False
    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return False  # cached: let huggingface_hub revalidate or fall back to the cache
    endpoint = _endpoint()
    if endpoint not in _REACHABLE:
        from huggingface_hub.utils import get_session

        try:
            get_session().head(endpoint, timeout=PROBE_TIMEOUT_S)
            _REACHABLE[endpoint] = True
        except Exception:  # any transport failure means "not reachable now"; HTTP answers mean reachable
            _REACHABLE[endpoint] = False
    return not _REACHABLE[endpoint]


def _catalog(repo_id: str, *, reason: str) -> ModelSpec | None:
    try:
        from hf_gpu_estimator.sources.catalog import lookup
    except ModuleNotFoundError as e:  # the catalog package is optional data while it is being built
        if e.name != "hf_gpu_estimator.sources.catalog":
            raise
        return None
    entry = lookup(repo_id)
    if entry is None:
        return None
    return replace(entry, assumptions=(f"facts from the bundled catalog because {reason}", *entry.assumptions))
