"""The coverage matrix: every causal-LM type of transformers, analytic against committed exact-mode traces.

Reference: ``tests/data/coverage_traces.json`` (``benchmarks/coverage_traces.py``: the real
transformers model on fake tensors, each type at its default config cut to a few layers).
Tolerance: exact parameter counts, inference peak within 10 %, training within 15 %
(:data:`matrix.compare.TOLERANCE`), for at least :data:`MIN_COVERAGE` of the types.
Only the analytic side is computed here; an entry traced with other torch/transformers
versions, or whose cut config changed, is stale: never trusted, counted as not covered.
"""

from __future__ import annotations

from typing import Any

import pytest

from matrix import compare, render
from matrix.cut import MIN_LAYERS, cut_config, default_cut_config

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def matrix() -> tuple[list[compare.Row], compare.Summary]:
    return render.current_table()


def _report(capsys: pytest.CaptureFixture[str], lines: list[str]) -> None:
    """Print past pytest's capture: the figures belong in every test run's output."""
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def test_coverage_figures(matrix: Any, capsys: pytest.CaptureFixture[str]) -> None:
    table, s = matrix
    by_status = {status: [r.model_type for r in table if r.status == status] for status in compare.STATUSES}
    lines = [
        f"coverage: {s.within}/{s.types} causal-LM types within tolerance ({s.coverage:.1%}, "
        f"required {compare.MIN_COVERAGE:.0%}); traced {s.traced}, estimated {s.estimated}, "
        f"exact parameter counts {s.exact_counts}; outside only by the count {s.count_only}",
        *(f"  {status}: {len(types)}" for status, types in by_status.items()),
    ]
    for r in table:
        if not r.within:
            lines.append(f"  {r.status}: {r.model_type} ({r.family or 'no family'}): {r.reason}")
    _report(capsys, lines[: 1 + len(compare.STATUSES)])
    assert s.coverage >= compare.MIN_COVERAGE, "\n".join(lines)


def test_every_gap_has_a_reason(matrix: Any) -> None:
    """Each type not within tolerance says why: compare.KNOWN_GAPS, or the measured miss (by role/bucket)."""
    table, _ = matrix
    silent = [r.model_type for r in table if not r.within and not r.reason]
    assert not silent, f"gaps without a reason: {silent}"


def test_known_gaps_still_miss(matrix: Any) -> None:
    table, _ = matrix
    fixed = [r.model_type for r in table if r.within and r.model_type in compare.KNOWN_GAPS]
    assert not fixed, f"now within tolerance: remove from compare.KNOWN_GAPS: {fixed}"


def test_no_stale_traces(matrix: Any) -> None:
    """A stale entry is excluded from the figures; re-trace it rather than trust it."""
    table, _ = matrix
    stale = {r.model_type: r.reason for r in table if r.status == "stale"}
    if stale and all("traced with torch" in why for why in stale.values()):
        pytest.skip("traces recorded with other torch/transformers versions: re-run benchmarks/coverage_traces.py")
    assert not stale, f"re-run benchmarks/coverage_traces.py for: {stale}"


def test_doc_is_current(matrix: Any) -> None:
    table, s = matrix
    expected = render.build_markdown(table, s)
    assert render.DOC_PATH.read_text() == expected, "docs/coverage.md is stale: run benchmarks/coverage_report.py"


# --- cutting a default config -------------------------------------------------------------------


class _Config:
    """A stand-in for a PretrainedConfig: to_dict, attribute_map and derived properties."""

    attribute_map: dict[str, str] = {}

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.to_dict() if isinstance(v, _Config) else v) for k, v in self.__dict__.items()}


class _Jamba(_Config):
    @property
    def layers_block_type(self) -> list[str]:
        return ["attention" if i % self.attn_layer_period == self.attn_layer_offset else "mamba"
                for i in range(self.num_hidden_layers)]


def test_cut_keeps_min_layers_for_uniform_models() -> None:
    cut = cut_config(_Config(model_type="llama", num_hidden_layers=32, hidden_size=64))
    assert cut.layers == (32, MIN_LAYERS)
    assert cut.config["num_hidden_layers"] == 2
    assert cut.changes == {"num_hidden_layers": "32 → 2"}


def test_cut_keeps_every_layer_type_and_cuts_the_list() -> None:
    types = ["sliding_attention"] * 5 + ["full_attention"]
    cut = cut_config(_Config(model_type="gemma3_text", num_hidden_layers=24, layer_types=types * 4))
    assert cut.layers == (24, 6)
    assert cut.config["layer_types"] == types


def test_cut_follows_derived_patterns_and_periods() -> None:
    jamba = _Jamba(model_type="jamba", num_hidden_layers=32, attn_layer_period=8, attn_layer_offset=4,
                   expert_layer_period=2, expert_layer_offset=1)
    assert cut_config(jamba).layers == (32, 8)
    deepseek = _Config(model_type="deepseek_v3", num_hidden_layers=61, first_k_dense_replace=3)
    assert cut_config(deepseek).layers == (61, 4)


def test_cut_drops_indices_past_the_cut_and_pairs_encoder_decoder() -> None:
    cut = cut_config(_Config(model_type="x", num_hidden_layers=40, cross_attention_layers=[3, 8, 13]))
    assert cut.layers == (40, 4)
    assert cut.config["cross_attention_layers"] == [3]
    bart = _Config(model_type="bart", encoder_layers=12, decoder_layers=12)
    bart.attribute_map = {"num_hidden_layers": "encoder_layers"}
    cut = cut_config(bart)
    assert (cut.config["encoder_layers"], cut.config["decoder_layers"]) == (2, 2)


def test_cut_of_a_wrapper_cuts_its_text_config() -> None:
    text = _Config(model_type="t", num_hidden_layers=30, layer_types=["a", "b"] * 15)
    cut = cut_config(_Config(model_type="vlm", text_config=text, vision_config={"num_hidden_layers": 27}))
    assert cut.config["text_config"]["num_hidden_layers"] == 2
    assert cut.config["vision_config"] == {"num_hidden_layers": 27}
    assert cut.changes["text_config.num_hidden_layers"] == "30 → 2"


def test_stale_entry_is_not_trusted() -> None:
    data = compare.load_data()
    if "llama" not in data.get("entries", {}):
        pytest.skip("no llama trace recorded")
    entry = dict(data["entries"]["llama"], transformers="0.0.1")
    stale = compare.stale_entries({"entries": {"llama": entry}})
    assert "traced with" in stale["llama"]
    entry = dict(data["entries"]["llama"], config_hash="0" * 16)
    assert "cut config changed" in compare.stale_entries({"entries": {"llama": entry}})["llama"]
    entry = dict(data["entries"]["llama"], tracer=compare.TRACER_VERSION - 1)
    assert "tracer version" in compare.stale_entries({"entries": {"llama": entry}})["llama"]


def test_compare_entry_without_a_family_says_why() -> None:
    row = compare.compare_entry("unknown_type", {"config": {"model_type": "unknown_type"}, "layers": [2, 2],
                                                  "parameters": 10, "traces": {}})
    assert row.status in ("not traced", "not estimated")
    assert row.reason


def test_cut_treats_increasing_layer_lists_as_indices() -> None:
    cut = cut_config(_Config(model_type="llama4_text", num_hidden_layers=48, moe_layers=list(range(48)),
                                      no_rope_layers=[1, 1, 1, 0] * 12))
    assert cut.layers == (48, 4)
    assert cut.config["moe_layers"] == [0, 1, 2, 3]
    assert cut.config["no_rope_layers"] == [1, 1, 1, 0]


class _Gemma4(_Config):
    @property
    def kv_sharing_modes(self) -> list[str | None]:  # recomputed from the layer count: not a kind
        return [None] * (self.num_hidden_layers - 2) + ["store", "store"]


def test_cut_ignores_per_layer_values_and_cuts_per_layer_dicts() -> None:
    types = ["sliding_attention"] * 5 + ["full_attention"]
    cut = cut_config(_Gemma4(model_type="gemma4_text", num_hidden_layers=30, layer_types=types * 5,
                                      per_layer_config={"05": {"head_dim": 512}, "29": {"head_dim": 512}},
                                      layer_ids=[f"id{i}" for i in range(30)]))
    assert cut.layers == (30, 6)
    assert cut.config["per_layer_config"] == {"05": {"head_dim": 512}}


def test_cut_keeps_one_trailing_shared_layer() -> None:
    cut = cut_config(_Config(model_type="gemma3n_text", num_hidden_layers=35, num_kv_shared_layers=15))
    assert cut.layers == (35, 21)
    assert cut.config["num_kv_shared_layers"] == 1


def test_cut_fills_unset_dimensions_as_transformers_derives_them() -> None:
    cut = cut_config(_Config(model_type="x", num_hidden_layers=4, hidden_size=256, num_attention_heads=4,
                                      head_dim=None, num_key_value_heads=None))
    assert (cut.config["head_dim"], cut.config["num_key_value_heads"]) == (64, 4)
    assert "unset in the default config" in cut.changes["head_dim"]


def test_traced_models_are_the_counted_models() -> None:
    """The traced model has the parameters of the model counted on the meta device (same class, same config)."""
    data = compare.load_data()
    mismatched = {t: (e.get("parameters"), {w: tr["parameters"] for w, tr in e.get("traces", {}).items()})
                  for t, e in data.get("entries", {}).items()
                  if any(tr["parameters"] != e.get("parameters") for tr in e.get("traces", {}).values())}
    assert not mismatched, f"re-run benchmarks/coverage_traces.py --only {' '.join(mismatched)}: {mismatched}"


def test_repairs_of_default_configs_transformers_rejects() -> None:
    """Per-type repairs are recorded with their reason: keyword overrides where transformers' validation rejects
    the default config itself (gemma4_assistant), settings after the cut (dory's sections, Qwen4-Exp's indexer)."""
    assistant = default_cut_config("gemma4_assistant")
    assert assistant.config["text_config"]["hidden_size_per_layer_input"] == 0
    assert assistant.changes["text_config.hidden_size_per_layer_input"].startswith("256 → 0 (")
    dory = default_cut_config("dory")
    sections = [dory.config[k] for k in ("n_input_layers", "n_recurrent_layers", "n_output_layers")]
    assert sum(sections) == dory.config["num_hidden_layers"] == 8 and all(sections)
    qwen4 = default_cut_config("qwen4_exp")
    assert qwen4.config["text_config"]["indexer_head_dim"] == 128 and "text_config.indexer_budget" in qwen4.changes


def test_cut_sets_the_real_count_of_a_derived_layer_field() -> None:
    """hrm_text: num_hidden_layers counts the calls of its recurrence; the cut sets num_layers_per_stack."""
    cut = cut_config(_Config(model_type="hrm_text", num_hidden_layers=128, num_layers_per_stack=16,
                                      H_cycles=2, L_cycles=3))
    assert cut.layers == (16, 2)
    assert (cut.config["num_layers_per_stack"], cut.config["num_hidden_layers"]) == (2, 16)


def test_generic_assumption_quotes_the_measured_error() -> None:
    """Every generic estimate carries the coverage matrix's figures for the generic family; they follow the data."""
    from hf_gpu_estimator.architectures.generic import GENERIC_MEASURED

    generic = [r for r in compare.rows() if r.generic and r.status in ("within", "outside")]
    measured = {"types": len(generic), "within": sum(r.within for r in generic)}
    for w in ("inference", "training"):
        errors = sorted(abs(r.errors[w]) for r in generic if w in r.errors)
        measured[f"{w}_median"] = round(errors[len(errors) // 2], 3)
        measured[f"{w}_worst"] = round(errors[-1], 3)
    assert measured == GENERIC_MEASURED, f"update architectures/generic.py GENERIC_MEASURED to {measured}"
