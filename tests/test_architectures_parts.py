"""architectures/parts.py: parts carry parameters, linears and the layer description; stack() sums them."""

from __future__ import annotations

import pytest

from hf_gpu_estimator.architectures import parts
from hf_gpu_estimator.architectures._fields import Fields
from hf_gpu_estimator.spec import ROLES


def test_attention_counts_its_linears_and_norms() -> None:
    a = parts.attention(64, 4, 2, 16, qkv_bias=True, o_bias=False, qk_norm=32)
    # q (64x64+64), k and v (64x32+32 each), o (64x64, no bias); q/k norms 2 x 16.
    assert a.params == {"attention": 64 * 64 + 64 + 2 * (64 * 32 + 32) + 64 * 64, "norm": 32}
    assert [x.name for x in a.linears] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (a.mixer.kind, a.mixer.heads, a.mixer.kv_heads, a.mixer.head_dim) == ("full", 4, 2, 16)
    gated = parts.attention(64, 4, 2, 16, q_gate=True, names=("q", "k", "v", "out"))
    assert gated.linears[0].out_features == 2 * 64 and gated.linears[-1].name == "out"


def test_windowed_and_with_mixer_keep_the_parameters() -> None:
    a = parts.attention(64, 4, 4, 16)
    s = parts.windowed(a, window=128)
    c = parts.windowed(a, chunk=256)
    assert (s.mixer.kind, s.mixer.window, c.mixer.kind, c.mixer.chunk) == ("sliding", 128, "chunked", 256)
    assert s.params == a.params == c.params
    assert parts.with_mixer(a, kv_shared=True).mixer.kv_shared


def test_gqa_refuses_kv_heads_that_do_not_divide() -> None:
    with pytest.raises(ValueError, match="num_key_value_heads"):
        parts.gqa(Fields({}, source="config.json"), 64, 4, 3, bias=False)


def test_moe_routes_and_idles() -> None:
    routed = parts.routed_experts(64, 32, 8, 2)
    shared = parts.gated_mlp(64, 48, role="experts")
    moe = parts.moe(routed, router=8 * 64, shared=shared, fp32_routing=True)
    expert = 3 * 64 * 32
    assert moe.params == {"experts": 8 * expert + 3 * 64 * 48, "router": 8 * 64}
    assert moe.idle == 6 * expert
    assert (moe.ffn.kind, moe.ffn.experts, moe.ffn.top_k, moe.ffn.shared, moe.ffn.fp32_routing) == (
        "moe", 8, 2, 48, True)
    assert [x.name for x in moe.linears] == ["gate_up_proj", "down_proj", "gate_proj", "up_proj", "down_proj"]
    with pytest.raises(ValueError):
        parts.moe(shared, router=0)


def test_stack_sums_roles_and_shares_layers() -> None:
    attention = parts.attention(64, 4, 4, 16)
    mlp = parts.gated_mlp(64, 96)
    moe = parts.moe(parts.routed_experts(64, 32, 4, 1), router=4 * 64)
    norms = parts.norm(2 * 64)
    s = parts.stack([(attention, norms, mlp if i == 0 else moe) for i in range(3)],
                    outer=(parts.embedding(100, 64), parts.norm(64), parts.lm_head(100, 64, "causal_lm", tied=False)))
    counts = s.tally.counts()
    assert counts.by_role["attention"] == 3 * attention.role("attention")
    assert counts.by_role["mlp"] == 3 * 64 * 96
    assert counts.by_role["experts"] == 2 * 4 * 3 * 64 * 32
    assert counts.by_role["norm"] == 3 * 128 + 64
    assert counts.by_role["embedding"] == counts.by_role["lm_head"] == 6400
    assert counts.active == counts.total - 2 * 3 * 3 * 64 * 32
    assert set(counts.by_role) == set(ROLES)
    assert s.layers[1] is s.layers[2] and s.layers[0] is not s.layers[1]
    assert s.moe_layers == (1, 2) and s.leading_dense == 1
    keywords = s.keywords()
    assert (keywords["num_experts"], keywords["num_experts_per_tok"], keywords["moe_intermediate_size"]) == (4, 1, 32)
    assert keywords["per_layer"] == s.layers
    # Every distinct part's linears, each (name, shape) once, in the order the pattern uses them.
    assert [x.name for x in s.linears] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj", "gate_up_proj", "down_proj"]


def test_stack_layer_kinds() -> None:
    attention = parts.attention(64, 4, 4, 16)
    mamba = parts.mamba2(64, 128, 8, 16, 1, 16, 4, proj_bias=False, conv_bias=True)
    s = parts.stack([(attention, mamba, parts.gated_mlp(64, 96))], linears=())
    assert s.layers[0].mixer.kind == "full" and s.layers[0].parallel.kind == "ssm" and s.linears == ()
    bare = parts.stack([(mamba,), (parts.mlp(64, 96),)])
    assert bare.layers[0].ffn.kind == "none" and bare.layers[1].mixer.kind == "none"
    with pytest.raises(ValueError):
        parts.stack([(parts.gated_mlp(64, 96), parts.gated_mlp(64, 96))])


def test_merge_keeps_or_folds_repeated_shapes() -> None:
    a = parts.of_linears("attention", parts.mlp(64, 64, names=("receptance", "value")).linears)
    b = parts.of_linears("mlp", parts.mlp(64, 64, names=("receptance", "value")).linears)
    assert len(parts.stack([(a, b)]).linears) == 2
    assert len(parts.stack([(a, b)], merge=False).linears) == 4


def test_reached_only_by_marks_every_parameter() -> None:
    cross = parts.reached_only_by(parts.combine(parts.attention(64, 4, 4, 16), parts.gated_mlp(64, 96)),
                                  "cross_attention")
    s = parts.stack([(cross,), (parts.attention(64, 4, 4, 16), parts.gated_mlp(64, 96))])
    counts = s.tally.counts()
    assert counts.off_text_path == {"cross_attention": sum(cross.params.values())}
    assert counts.total == 2 * sum(cross.params.values())


def test_repeated_counts_a_stack_it_does_not_describe() -> None:
    block = parts.combine(parts.attention(64, 4, 4, 16), parts.gated_mlp(64, 96))
    s = parts.stack([(block,)], outer=(parts.repeated(block, 3),))
    assert s.tally.counts().total == 4 * sum(block.params.values())
    assert len(s.layers) == 1
