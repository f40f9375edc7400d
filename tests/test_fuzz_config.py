"""Fuzzing config.json: every field we read, for every supported model_type, with a wrong value.

A wrong type or an impossible value ends in a typed ``EstimatorError`` (``MalformedConfigError``
naming the field, or ``UnsupportedArchitectureError``) with a one-line message, or in a valid
estimate when the value happens to be acceptable; never a bare TypeError, ZeroDivisionError,
OverflowError or RecursionError, and never more than a bounded time per case.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_gpu_estimator import errors
from hf_gpu_estimator.memory import estimate_memory
from hf_gpu_estimator.sources import inspect_model
from hf_gpu_estimator.architectures import SUPPORTED_MODEL_TYPES, architecture_from_config, parameter_counts
from hf_gpu_estimator.sources.config import config_from_json_text
from hf_gpu_estimator.workload import make_workload

CONFIGS = Path(__file__).resolve().parent / "configs"
#: A case that hangs or loops over a billion layers takes minutes; a normal one 0.2 s on an idle core. The
#: bound is for the first (2.07 s was seen for an ordinary case on a 2-core machine under full load).
CASE_BUDGET_S = 10.0
WORKLOADS = (make_workload(), make_workload(task="training", batch_size=2, seq_len=128, gradient_checkpointing=True))

#: One value of every JSON type, and the integers and floats that break arithmetic.
WRONG_VALUES = ("x", "", [1], [], {"a": 1}, 1.5, True, -1, 0, 10**40, None, float("nan"), float("inf"))


class _Recording(dict):
    """A config dict that records which keys (dotted, for nested configs) the code reads."""

    def __init__(self, data: dict, seen: set[str], prefix: str = ""):
        super().__init__({k: _Recording(v, seen, f"{prefix}{k}.") if isinstance(v, dict) else v for k, v in data.items()})
        self._seen, self._prefix = seen, prefix

    def _mark(self, key: object) -> None:
        self._seen.add(f"{self._prefix}{key}")

    def __contains__(self, key: object) -> bool:
        self._mark(key)
        return super().__contains__(key)

    def __getitem__(self, key: str):
        self._mark(key)
        return super().__getitem__(key)

    def get(self, key: str, default=None):
        self._mark(key)
        return super().get(key, default)


def _base_configs() -> dict[str, list[dict]]:
    """For each model_type: a minimal config and any real config in tests/configs."""
    bases: dict[str, list[dict]] = {mt: [{"model_type": mt}] for mt in SUPPORTED_MODEL_TYPES}
    for path in sorted(CONFIGS.glob("*.json")):
        config = json.loads(path.read_text())
        if config.get("model_type") in bases:
            bases[config["model_type"]].append(config)
    return bases


def _fields_read(config: dict) -> set[str]:
    seen: set[str] = set()
    recording = _Recording(config, seen)
    architecture_from_config(recording)
    parameter_counts(recording)
    return seen


def _with(config: dict, dotted: str, value: object) -> dict:
    out = json.loads(json.dumps(config))
    *parents, leaf = dotted.split(".")
    node = out
    for p in parents:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[leaf] = value
    return out


def _cases() -> list[tuple[str, dict, str]]:
    cases = []
    for model_type, bases in _base_configs().items():
        for i, base in enumerate(bases):
            for field in sorted(_fields_read(base) - {"model_type", "_name_or_path"}):
                cases.append((f"{model_type}[{i}].{field}", base, field))
    return cases


CASES = _cases()


def check(config: dict) -> None:
    """Run everything that reads a config; only typed errors with one-line messages may escape."""
    start = time.monotonic()
    try:
        architecture_from_config(config)
        parameter_counts(config)
        spec = inspect_model(config)
        for work in WORKLOADS:
            mem = estimate_memory(spec, work)
            assert mem.device_total_bytes >= 0 and isinstance(mem.device_total_bytes, int)
    except errors.EstimatorError as e:
        message = str(e)
        assert message and "\n" not in message, repr(message)
    finally:
        assert time.monotonic() - start < CASE_BUDGET_S


def test_every_supported_model_type_has_fields_to_fuzz():
    types_covered = {case[0].split("[")[0] for case in CASES}
    assert types_covered == set(SUPPORTED_MODEL_TYPES)
    assert len(CASES) > 300


@pytest.mark.parametrize(("base", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_wrong_value_for_every_field(base, field):
    for value in WRONG_VALUES:
        check(_with(base, field, value))


@pytest.mark.parametrize("model_type", SUPPORTED_MODEL_TYPES)
def test_wrong_type_for_an_int_field_names_the_field(model_type):
    bad = {"num_hidden_layers": "32", "num_layers": "32", "n_layer": "32"}
    config = {"model_type": model_type, **bad, "text_config": bad}  # gemma3 reads its text_config
    with pytest.raises(errors.MalformedConfigError) as info:
        architecture_from_config(config)
    assert info.value.field is not None and "32" in str(info.value)


@pytest.mark.parametrize("value", [None, 7, "", "not-a-model", ["llama"], {"a": 1}, True])
def test_model_type_itself(value):
    with pytest.raises((errors.MalformedConfigError, errors.UnsupportedArchitectureError)) as info:
        inspect_model({"model_type": value, "hidden_size": 8})
    assert "\n" not in str(info.value)


# --- config.json bytes ------------------------------------------------------------------------

HOSTILE_TEXTS = {
    "empty": b"",
    "not-json": b"<html>",
    "array": b"[1, 2]",
    "string": b'"llama"',
    "null": b"null",
    "number": b"7",
    "deep-array": b"[" * 100_000,
    "deep-object": b'{"a":' * 100_000,
    "huge-int": b'{"model_type": "llama", "hidden_size": ' + b"9" * 10_000 + b"}",
    "non-utf8": b'{"model_type": "\xff\xfe"}',
    "lone-surrogate": b'{"model_type": "\\ud800"}',
    "truncated": b'{"model_type": "llama", "hidden_size": 40',
    "nul": b"\x00" * 100,
}


@pytest.mark.parametrize("text", HOSTILE_TEXTS.values(), ids=HOSTILE_TEXTS.keys())
def test_hostile_config_bytes(text, tmp_path):
    start = time.monotonic()
    try:
        config = config_from_json_text(text, source="config.json")
    except errors.MalformedConfigError as e:
        assert "\n" not in str(e) and "config.json" in str(e)
    else:
        check(config)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_bytes(text)
    with pytest.raises(errors.EstimatorError) as info:
        inspect_model(folder)
    assert "\n" not in str(info.value)
    assert time.monotonic() - start < CASE_BUDGET_S


def test_enormous_config_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from hf_gpu_estimator.sources import config as config_module

    monkeypatch.setattr(config_module, "MAX_CONFIG_BYTES", 1000)
    monkeypatch.setattr("hf_gpu_estimator.sources.local.MAX_CONFIG_BYTES", 1000)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "pad": "x" * 5000}))
    with pytest.raises(errors.MalformedConfigError, match="plausibly"):
        inspect_model(folder)
    with pytest.raises(errors.MalformedConfigError, match="exceeds the limit"):
        config_from_json_text(b" " * 2000, source="c")


def test_duplicate_keys_in_config_take_the_last_as_transformers_does():
    config = config_from_json_text(b'{"model_type": "llama", "num_hidden_layers": 1, "num_hidden_layers": 2}', source="c")
    assert config["num_hidden_layers"] == 2


def test_utf8_bom_is_accepted():
    assert config_from_json_text(b'\xef\xbb\xbf{"model_type": "gpt2"}', source="c")["model_type"] == "gpt2"


# --- random configs ---------------------------------------------------------------------------

_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
)  # fmt: skip
_json = st.recursive(_json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                     max_leaves=8)  # fmt: skip
_FIELDS = sorted({c[2].split(".")[0] for c in CASES})


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_type=st.sampled_from(SUPPORTED_MODEL_TYPES),
       fields=st.dictionaries(st.sampled_from(_FIELDS), _json | st.integers(min_value=-4, max_value=64), max_size=6))
def test_random_configs(model_type, fields):
    check({"model_type": model_type, **fields})


#: Model types with no family module, estimated by the generic family.
_GENERIC_TYPES = ("gpt_neo", "opt", "bloom", "qwen3_next", "falcon_mamba")


@settings(max_examples=150, derandomize=True, deadline=None)
@given(model_type=st.sampled_from(SUPPORTED_MODEL_TYPES + _GENERIC_TYPES),
       fields=st.dictionaries(st.sampled_from(_FIELDS), st.integers(min_value=1, max_value=10**12), max_size=5))
def test_random_positive_ints_never_overflow(model_type, fields):
    """Plausible types, absurd sizes: arithmetic stays exact ints, or a typed error."""
    config = {"model_type": model_type, **fields}
    check(config)
    assert not any(isinstance(v, float) and math.isnan(v) for v in config.values())
