"""Meta's original Llama layout: ``params.json`` + ``consolidated.*.pth`` (+ ``tokenizer.model``).

Meta publishes its Llama releases in the layout of its reference code (github.com/meta-llama/llama,
``llama/model.py`` ``ModelArgs``): ``params.json`` holds the dimensions, the weights sit in
``consolidated.NN.pth`` files (one per model-parallel rank), and repos of Llama 3 and later carry
the same files in an ``original/`` folder next to the transformers layout. The dimensions map
one to one onto transformers' ``LlamaConfig`` (``convert_llama_weights_to_hf.py`` does that
mapping), so the model is counted through the llama family like its ``-hf`` twin, with the
same exact parameter count. The ``.pth`` files are pickles: never opened, only their sizes read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from hf_gpu_estimator import errors
from hf_gpu_estimator.constants import MAX_INT
from hf_gpu_estimator.spec import ModelSpec

PARAMS_FILE = "params.json"
#: Folders where a repo or download keeps Meta's files: the root (Llama 2), ``original/`` (Llama 3+).
PARAMS_LOCATIONS = (PARAMS_FILE, f"original/{PARAMS_FILE}")
WEIGHTS_PATTERN = re.compile(r"(^|/)consolidated\.\d+\.pth$")
#: Meta's Llama 2 checkpoints store bfloat16 (the -hf conversion casts them to float16):
#: https://github.com/huggingface/transformers/issues/25446
STORED_DTYPE = "bfloat16"
#: params.json is a few hundred bytes; a megabyte is no params.json.
MAX_PARAMS_BYTES = 1 << 20
#: sentencepiece models are hundreds of KB; tokenizer.json a few MB.
MAX_TOKENIZER_BYTES = 64 << 20
_REQUIRED = ("dim", "n_layers", "n_heads")


def is_meta_params(params: object) -> bool:
    """Whether a decoded JSON object looks like Meta's ``params.json`` (not a transformers config)."""
    return isinstance(params, Mapping) and all(k in params for k in _REQUIRED) and "model_type" not in params


def intermediate_size(dim: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    """The SwiGLU hidden size by Meta's rule (llama/model.py ``FeedForward.__init__``).

    ``int(2 * 4 * dim / 3)``, times ``ffn_dim_multiplier`` (truncated), rounded up to ``multiple_of``.

    >>> intermediate_size(4096, 256, None), intermediate_size(8192, 4096, 1.3), intermediate_size(4096, 1024, 1.3)
    (11008, 28672, 14336)
    """
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def llama_config(
    params: Mapping[str, object], *, vocab_size: int, source: str, twin: Mapping[str, object] | None = None
) -> tuple[dict[str, object], list[str]]:
    """A transformers ``LlamaConfig`` dict from ``params.json``, and the assumptions made.

    Args:
        params: Meta's params.json.
        vocab_size: The vocabulary size (params.json's, or the tokenizer's when it says -1).
        source: Where params.json came from, for error messages.
        twin: The ``-hf`` twin's config.json, when known: it supplies what params.json does not
            say (context length, rope scaling, tied embeddings).

    Raises:
        MalformedConfigError: a missing or mistyped field.
    """
    from hf_gpu_estimator.architectures._fields import Fields

    # The limits every source is read under (constants.MAX_INT, MAX_LAYERS): positive, bounded, finite.
    fields = Fields(params, source=source)
    dim = fields.integer("dim", 0)
    heads = fields.integer("n_heads", 0)
    kv_heads = fields.opt_int("n_kv_heads", heads) or heads
    multiple_of = fields.opt_int("multiple_of", 256) or 256
    multiplier = fields.opt_float("ffn_dim_multiplier", None, positive=True)
    norm_eps = fields.opt_float("norm_eps", 1e-5, positive=True) or 1e-5
    rope_theta = fields.opt_float("rope_theta", 10000.0, positive=True) or 10000.0
    if multiplier is not None and multiplier * 8 * dim / 3 > MAX_INT:  # int(inf) would overflow
        raise fields.error("ffn_dim_multiplier", multiplier, f"a positive number giving an FFN width up to {MAX_INT:,}")
    if kv_heads > heads or heads % kv_heads:
        raise errors.MalformedConfigError(source, f"{source}: n_kv_heads={kv_heads} does not divide n_heads={heads}",
                                          field="n_kv_heads")  # fmt: skip
    if dim % heads:
        raise errors.MalformedConfigError(source, f"{source}: dim={dim} is not a multiple of n_heads={heads}",
                                          field="n_heads")  # fmt: skip
    notes: list[str] = []
    config: dict[str, object] = {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_act": "silu",
        "hidden_size": dim, "num_hidden_layers": fields.integer("n_layers", 0),
        "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "intermediate_size": intermediate_size(dim, multiple_of, multiplier),
        "rms_norm_eps": norm_eps, "rope_theta": rope_theta,
        "vocab_size": vocab_size, "torch_dtype": STORED_DTYPE,
    }  # fmt: skip
    if twin is not None:
        for key in ("max_position_embeddings", "rope_scaling", "tie_word_embeddings", "bos_token_id", "eos_token_id"):
            if key in twin:
                config[key] = twin[key]
    else:
        # params.json has no context length: Meta's reference code takes max_seq_len at launch.
        # Llama 2: 4096; Llama 3: 8192; Llama 3.1+ (use_scaled_rope): 131072 (their model cards).
        context = 131072 if params.get("use_scaled_rope") else 8192 if config["rope_theta"] == 500000.0 else 4096
        config["max_position_embeddings"] = context
        config["tie_word_embeddings"] = False
        notes.append(f"{source}: no context length in params.json, assumed {context:,} tokens (the release's model "
                     "card); output layer assumed untied from the embeddings")  # fmt: skip
    return config, notes


def sentencepiece_vocab_size(data: bytes, *, source: str) -> int:
    """Pieces in a sentencepiece ``tokenizer.model`` (``ModelProto``: field 1, repeated ``pieces``).

    Walks the protobuf wire format (varint tags and lengths) without decoding the pieces.

    Raises:
        MalformedConfigError: not a sentencepiece model.
    """
    count, i, n = 0, 0, len(data)
    while i < n:
        tag, i = _varint(data, i, source)
        field, wire = tag >> 3, tag & 7
        if wire == 2:
            length, i = _varint(data, i, source)
            if i + length > n:
                raise errors.MalformedConfigError(source, f"{source}: truncated sentencepiece model")
            i += length
            count += field == 1
        elif wire == 0:
            _, i = _varint(data, i, source)
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise errors.MalformedConfigError(source, f"{source}: not a sentencepiece model (wire type {wire})")
    if count == 0:
        raise errors.MalformedConfigError(source, f"{source}: a sentencepiece model with no pieces")
    return count


def tokenizer_json_vocab_size(data: bytes, *, source: str) -> int:
    """Vocabulary of a ``tokenizer.json``: one past the largest id of ``model.vocab`` and ``added_tokens``."""
    from hf_gpu_estimator.sources._json import JSONProblem, loads

    try:
        document = loads(data, max_bytes=MAX_TOKENIZER_BYTES)
        vocab = document["model"]["vocab"]
        ids = list(vocab.values()) if isinstance(vocab, Mapping) else list(range(len(vocab)))
        ids += [t["id"] for t in document.get("added_tokens") or ()]
        return 1 + max(int(i) for i in ids)
    except (JSONProblem, KeyError, TypeError, ValueError) as e:
        raise errors.MalformedConfigError(source, f"{source}: no vocabulary in tokenizer.json ({e})") from e


def vocab_size_from_tokenizer(name: str, data: bytes, *, source: str) -> int:
    """The vocabulary size from a ``tokenizer.model`` (sentencepiece) or ``tokenizer.json``."""
    if name.endswith(".json"):
        return tokenizer_json_vocab_size(data, source=source)
    return sentencepiece_vocab_size(data, source=source)


def params_from_bytes(data: bytes, *, source: str) -> dict[str, object]:
    """Decode params.json.

    Raises:
        MalformedConfigError: not JSON, or not Meta's params.
    """
    from hf_gpu_estimator.sources._json import JSONProblem, loads

    try:
        params = loads(data, max_bytes=MAX_PARAMS_BYTES)
    except JSONProblem as e:
        raise errors.MalformedConfigError(source, f"{source}: params.json is not valid JSON ({e})") from e
    if not is_meta_params(params):
        raise errors.MalformedConfigError(
            source, f"{source}: params.json lacks {', '.join(_REQUIRED)}; not Meta's Llama layout"
        )
    return dict(params)


# --- local folders -----------------------------------------------------------------------------


def find_local_params(folder: Path) -> Path | None:
    """``params.json`` in ``folder`` or its ``original/`` subfolder, if either holds Meta's params."""
    for name in PARAMS_LOCATIONS:
        path = folder / name
        if path.is_file():
            return path
    return None


def local_tokenizer(params_path: Path) -> Path | None:
    """tokenizer.model next to params.json, or one folder up (Meta's Llama 2 download layout)."""
    for folder in (params_path.parent, params_path.parent.parent):
        for name in ("tokenizer.model", "tokenizer.json"):
            if (folder / name).is_file():
                return folder / name
    return None


def _varint(data: bytes, i: int, source: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise errors.MalformedConfigError(source, f"{source}: truncated or invalid sentencepiece model")
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def describe(params: Mapping[str, object]) -> str:
    """A one-line summary of the params for an assumption line."""
    return json.dumps({k: params[k] for k in sorted(params)}, separators=(",", ":"))


# --- assembling the spec ----------------------------------------------------------------------


def build_meta_spec(
    *,
    model_id: str,
    params: Mapping[str, object],
    params_source: str,
    read_tokenizer: Callable[[], tuple[str, bytes] | None],
    file_sizes: Mapping[str, int],
    revision: str | None = None,
    notes: Iterable[str] = (),
) -> ModelSpec:
    """The ModelSpec of a Meta-layout checkpoint, counted through the llama family.

    Args:
        model_id: Hub id or path.
        params: params.json.
        params_source: Where params.json was read (for messages).
        read_tokenizer: Returns ``(file name, bytes)`` of the tokenizer, or ``None``; called only
            when params.json says ``vocab_size: -1`` and the catalog has no ``-hf`` twin.
        file_sizes: Sizes of the repo's or folder's files (``consolidated.*.pth`` give the checkpoint size).
        revision: Hub commit.
        notes: Assumptions so far.
    """
    from dataclasses import replace

    from hf_gpu_estimator.sources.catalog import catalog_entry
    from hf_gpu_estimator.sources.headers import build_spec
    from hf_gpu_estimator.spec import TORCH_TO_SAFETENSORS

    assumptions = list(notes)
    twin = catalog_entry(model_id)
    twin_config = dict(twin["config"]) if twin is not None else None
    vocab = params.get("vocab_size", -1)
    if isinstance(vocab, bool) or not isinstance(vocab, int) or not (vocab == -1 or 0 < vocab <= MAX_INT):
        raise errors.MalformedConfigError(
            params_source, f"{params_source}: vocab_size={errors.excerpt(vocab)}, expected -1 (the tokenizer's size) "
            f"or an integer from 1 to {MAX_INT:,}", field="vocab_size",
        )  # fmt: skip
    if vocab > 0:
        vocab_size = vocab
    elif twin_config is not None and isinstance(twin_config.get("vocab_size"), int):
        vocab_size = int(twin_config["vocab_size"])  # type: ignore[arg-type]
        assumptions.append(f"vocab_size -1 in params.json: {vocab_size:,} from the tokenizer of the -hf twin "
                           f"{twin['id']} (bundled catalog)")  # fmt: skip
    else:
        found = read_tokenizer()
        if found is None:
            raise errors.MalformedConfigError(
                params_source, f"{params_source}: vocab_size is -1 (the tokenizer's size) and no tokenizer.model or "
                "tokenizer.json sits next to it or one folder up; copy the tokenizer there", field="vocab_size",
            )  # fmt: skip
        name, data = found
        vocab_size = vocab_size_from_tokenizer(name, data, source=name)
        assumptions.append(f"vocab_size -1 in params.json: {vocab_size:,} pieces in {name}")
    config, more = llama_config(params, vocab_size=vocab_size, source=params_source, twin=twin_config)
    assumptions.append(
        f"Meta's original layout ({params_source}): dimensions from params.json mapped onto a LlamaConfig, "
        f"intermediate size {config['intermediate_size']:,} by Meta's FeedForward rule; consolidated.*.pth not opened"
    )
    assumptions.extend(more)
    spec = build_spec(model_id=model_id, config=config, tensors=None, revision=revision, assumptions=assumptions)
    weights = sum(size for name, size in file_sizes.items() if WEIGHTS_PATTERN.search(name))
    if weights:
        spec = replace(spec, checkpoint_bytes=weights,
                       checkpoint_bytes_by_dtype={TORCH_TO_SAFETENSORS[STORED_DTYPE]: weights},
                       provenance={**spec.provenance, "stored_dtype": "default"},
                       assumptions=(*spec.assumptions, f"checkpoint size {weights:,} bytes: the consolidated.*.pth "
                                    f"files as listed; stored dtype {STORED_DTYPE} (Meta's release format)"))  # fmt: skip
    return spec
