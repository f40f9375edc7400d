"""The model sets a census reads: the bundled catalog, a file of ids, or the Hub's top N for a pipeline tag."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hf_gpu_estimator import errors

__all__ = ["HUB_SORTS", "ModelRef", "list_hub_models", "model_refs", "read_model_list", "upload_folder"]

#: ``--sort`` names and the ``HfApi.list_models(sort=...)`` value each means.
HUB_SORTS: dict[str, str] = {"downloads": "downloads", "likes": "likes", "trending": "trending_score"}
#: A model list file is a list of ids; one this large is a mistake (the Hub's top 100,000 is ~3 MB).
_MAX_LIST_BYTES = 16 << 20


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    """A model of the set: its id, and the repo's creation date on the Hub when the listing gave it."""

    id: str
    created_at: str | None = None


def read_model_list(path: str | os.PathLike[str]) -> tuple[ModelRef, ...]:
    """One model id per line (Hub id or local path); blank lines and ``#`` comments are skipped, repeats dropped.

    Raises:
        InvalidArgumentError: The file cannot be read, is too large, or lists no model.
    """
    file = Path(path)
    try:
        if file.stat().st_size > _MAX_LIST_BYTES:
            raise errors.InvalidArgumentError("models", str(path), f"a list of model ids under {_MAX_LIST_BYTES >> 20} MiB")
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise errors.InvalidArgumentError("models", str(path), "'catalog', 'hub:PIPELINE_TAG:N' or a readable "
                                          f"UTF-8 file of model ids ({type(e).__name__})") from e  # fmt: skip
    ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    refs = tuple(ModelRef(id=i) for i in dict.fromkeys(i for i in ids if i))
    if not refs:
        raise errors.InvalidArgumentError("models", str(path), "a file with at least one model id, one per line")
    return refs


def list_hub_models(pipeline_tag: str, limit: int, *, sort: str = "downloads",
                    token: str | bool | None = None) -> tuple[ModelRef, ...]:
    """The Hub's first ``limit`` models with ``pipeline_tag``, by downloads, likes or trending
    (``HfApi.list_models``; the listing is retried like every Hub request, see :func:`sources.hub._retrying`).

    Raises:
        InvalidArgumentError: An unknown sort or a limit below 1.
        HubConnectionError: The Hub cannot be reached or keeps failing.
    """
    from huggingface_hub import HfApi

    from hf_gpu_estimator.sources.hub import _endpoint, _hub_errors, _retrying

    if sort not in HUB_SORTS:
        raise errors.InvalidArgumentError("sort", sort, ", ".join(HUB_SORTS))
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise errors.InvalidArgumentError("models", limit, "hub:PIPELINE_TAG:N with N >= 1")
    endpoint = _endpoint()
    api = HfApi(endpoint=endpoint, token=token)
    source = f"hub:{pipeline_tag}:{limit}"
    with _hub_errors(source, revision=None, endpoint=endpoint, offline=False):
        infos = _retrying(lambda: list(api.list_models(pipeline_tag=pipeline_tag, sort=HUB_SORTS[sort],  # type: ignore[arg-type]
                                                       limit=limit)), endpoint=endpoint)  # fmt: skip
    refs = {}
    for info in infos:
        created = getattr(info, "created_at", None)
        refs.setdefault(info.id, ModelRef(id=info.id, created_at=created.isoformat() if created else None))
    return tuple(refs.values())


def model_refs(models: str, *, sort: str = "downloads", token: str | bool | None = None) -> tuple[ModelRef, ...]:
    """The model set of ``hfge census --models``: ``catalog``, ``hub:PIPELINE_TAG:N`` or a file of ids."""
    if models == "catalog":
        from hf_gpu_estimator.sources.catalog import list_models

        return tuple(ModelRef(id=i) for i in list_models())
    if models.startswith("hub:"):
        tag, _, count = models.removeprefix("hub:").rpartition(":")
        if not tag or not count.isdigit():
            raise errors.InvalidArgumentError("models", models, "hub:PIPELINE_TAG:N, e.g. hub:text-generation:100")
        return list_hub_models(tag, int(count), sort=sort, token=token)
    return read_model_list(models)


def upload_folder(folder: str | os.PathLike[str], repo_id: str, *, token: str | bool | None = None,
                  private: bool = False, ignore: tuple[str, ...] = ()) -> str:
    """``folder`` into the Hub dataset repo ``repo_id`` (``HfApi.create_repo(exist_ok=True)`` then
    ``upload_folder``), leaving out the ``ignore`` patterns; returns the repo's URL.

    Raises:
        InvalidArgumentError: ``repo_id`` is not ``ORG/NAME``.
        GatedRepoError, ModelNotFoundError, HubConnectionError: as every Hub request (no write access, no
            such namespace, the Hub unreachable).
    """
    from huggingface_hub import HfApi

    from hf_gpu_estimator.sources.hub import _endpoint, _hub_errors, looks_like_repo_id

    if "/" not in repo_id or not looks_like_repo_id(repo_id):
        raise errors.InvalidArgumentError("push-to-hub", repo_id, "ORG/NAME, a Hub dataset repo id")
    endpoint = _endpoint()
    api = HfApi(endpoint=endpoint, token=token)
    with _hub_errors(repo_id, revision=None, endpoint=endpoint, offline=False):
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset", ignore_patterns=list(ignore),
                          commit_message="hfge census")
    return str(url)
