"""Evaluation demand: tokens, memory, wall time, GPU-hours and cost of running benchmark suites (pure arithmetic).

The suites are data (``data/eval_suites.json``: examples, few-shot default, scoring kind and token
lengths per task, each with its source). This module turns a list of tasks into the requests
lm-evaluation-harness sends, and sizes them on a GPU with the memory model, vLLM's KV-pool sizing
(:func:`~hf_gpu_estimator.planner.engines.vllm.serving_capacity`) and the roofline of :mod:`hf_gpu_estimator.perf`.

>>> from hf_gpu_estimator.sources.catalog import lookup
>>> from hf_gpu_estimator.hardware import get_gpu
>>> p = plan_eval(lookup("meta-llama/Llama-2-7b-hf"), None, get_gpu("H100-SXM-80GB"), "mmlu,gsm8k")
>>> [t.task for t in p.tasks]
['mmlu', 'gsm8k']
>>> p.tasks[0].requests                     # 14,042 questions x 4 choices
56168
>>> 0 < p.gpu_hours < 1
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from hf_gpu_estimator.cost import hourly_cost_usd
from hf_gpu_estimator.errors import (
    EstimatorError,
    InfeasiblePlanError,
    InvalidArgumentError,
    MissingGPUDataError,
    UnknownNameError,
    close_matches,
    excerpt,
)
from hf_gpu_estimator.hardware import GPU, get_gpu, list_gpus
from hf_gpu_estimator.memory import estimate_memory
from hf_gpu_estimator.memory.overhead import device_total_on
from hf_gpu_estimator.perf import decode_step_seconds, prefill_seconds
from hf_gpu_estimator.planner._search import fp16_fallback
from hf_gpu_estimator.planner.engines import unsupported_engine
from hf_gpu_estimator.planner.deployment import Deployment
from hf_gpu_estimator.planner.engines.vllm import DEFAULT_GPU_MEMORY_UTILIZATION
from hf_gpu_estimator.planner.fits import max_batch_size
from hf_gpu_estimator.planner.parallel import min_gpus
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Parallelism, Workload

__all__ = [
    "EVAL_ENGINES",
    "HF_MAX_BATCH_SIZE",
    "CheapestEval",
    "EvalPlan",
    "EvalTask",
    "TaskDemand",
    "TaskRun",
    "cheapest_eval",
    "eval_suites",
    "eval_tasks",
    "plan_eval",
    "resolve_evals",
    "task_demand",
]

Engine = Literal["vllm", "transformers"]
EVAL_ENGINES: tuple[str, ...] = ("vllm", "transformers")

#: lm-eval's HF backend: ``batch_size="auto"`` searches down from ``max_batch_size`` (default 64,
#: lm_eval/models/huggingface.py ``max_batch_size: int | None = 64``).
HF_MAX_BATCH_SIZE = 64
#: In a static ``generate`` batch every sequence waits for the longest; with stop strings the longest
#: answer of a batch is taken as twice the mean (capped at ``max_gen_toks``). No published figure: a
#: round assumption, stated in the plan.
HF_LONGEST_OVER_MEAN = 2.0


# --------------------------------------------------------------------------- the data


@dataclass(frozen=True, kw_only=True)
class EvalTask:
    """One task of ``data/eval_suites.json`` (see its ``_about``; token lengths are cl100k_base tokens).

    Attributes:
        name: Our name (the harness task name, except aggregated groups such as ``bbh``).
        suite: The suite it belongs to.
        harness_task: The lm-evaluation-harness task or group.
        split: The split the harness scores.
        examples: Documents in that split.
        kind: ``"loglikelihood"`` (one request per choice) or ``"generate"``.
        num_fewshot: The harness default.
        choices: Mean choices per document (log-likelihood).
        continuation_tokens: Mean tokens of one choice.
        single_token_choices: Every choice is one token (the HF backend then scores all choices of a
            document from one forward, its logits cache).
        shared_context: Choices share the context (False for Winogrande's partial evaluation).
        question_tokens: One rendered document (``doc_to_text``).
        target_tokens: The gold answer as a few-shot example shows it.
        description_tokens: A fixed preamble (task description, TruthfulQA's 6 QA pairs).
        fewshot_prefix_tokens: The measured few-shot block when the exemplars are fixed.
        fewshot_fixed: Every document gets the same exemplars (``first_n`` sampler or fixed samples).
        generated_tokens: Mean generated tokens (generation).
        max_gen_toks: Generation cap.
        until: Stop strings.
        repeats: Samples per document.
        tokens_estimated: Whether the token lengths are estimates rather than measurements.
    """

    name: str
    suite: str
    harness_task: str
    split: str
    examples: int
    kind: Literal["loglikelihood", "generate"]
    num_fewshot: int = 0
    choices: float = 1.0
    continuation_tokens: float = 0.0
    single_token_choices: bool = False
    shared_context: bool = True
    question_tokens: float
    target_tokens: float | None = None
    description_tokens: float = 0.0
    fewshot_prefix_tokens: float | None = None
    fewshot_fixed: bool = False
    generated_tokens: float = 0.0
    max_gen_toks: int = 256
    until: tuple[str, ...] = ()
    repeats: int = 1
    subtasks: int = 1
    fewshot_variants: dict[str, int] = field(default_factory=dict)
    source: str
    examples_source: str
    tokens_basis: str

    @property
    def tokens_estimated(self) -> bool:
        return "estimate" in self.tokens_basis

    def prompt_tokens(self, num_fewshot: int | None = None) -> float:
        """Mean context tokens of one request: preamble + ``k`` exemplars + the document.

        Exemplars are ``question + ' ' + target + '\\n\\n'`` (lm-eval's default ``target_delimiter`` and
        ``fewshot_delimiter``); the measured fixed block is used at the default ``k``.
        """
        k = self.num_fewshot if num_fewshot is None else num_fewshot
        target = self.target_tokens if self.target_tokens is not None else (self.continuation_tokens or 1.0)
        if k == self.num_fewshot and self.fewshot_prefix_tokens is not None:
            shots = self.fewshot_prefix_tokens
        else:
            shots = k * (self.question_tokens + target + 3)  # 1 target delimiter + 2 few-shot delimiter tokens
        return self.description_tokens + shots + self.question_tokens

    def shared_prefix_tokens(self, num_fewshot: int | None = None) -> float:
        """Tokens every request of the task starts with (a prefix cache computes them once)."""
        if not self.fewshot_fixed and (num_fewshot or self.num_fewshot):
            return self.description_tokens
        return self.prompt_tokens(num_fewshot) - self.question_tokens


@dataclass(frozen=True, kw_only=True)
class Suite:
    name: str
    title: str
    tasks: tuple[tuple[str, int | None], ...]  # (task, few-shot override)
    source: str | None = None


_FIXED_FEWSHOT = ("mmlu", "mmlu_pro", "bbh", "leaderboard_")  # first_n samplers / fixed samples in the YAMLs


@lru_cache(maxsize=1)
def _registry() -> tuple[dict[str, EvalTask], dict[str, Suite]]:
    raw = json.loads(resources.files("hf_gpu_estimator").joinpath("data/eval_suites.json").read_text(encoding="utf-8"))
    suite_of: dict[str, str] = {}
    suites: dict[str, Suite] = {}
    for name, s in raw["suites"].items():
        entries = []
        for item in s["tasks"]:
            task, _, shots = item.partition(":")
            entries.append((task, int(shots) if shots else None))
            suite_of.setdefault(task, name)
        suites[name] = Suite(name=name, title=s["title"], tasks=tuple(entries), source=s.get("source"))
    tasks: dict[str, EvalTask] = {}
    for name, t in raw["tasks"].items():
        fields = dict(t)
        fields.pop("group", None)
        fields["until"] = tuple(fields.get("until", ()))
        fields["fewshot_fixed"] = name.startswith(_FIXED_FEWSHOT)
        tasks[name] = EvalTask(name=name, suite=suite_of.get(name, name), **fields)
    return tasks, suites


def eval_tasks() -> dict[str, EvalTask]:
    """Every task in the data, by name."""
    return dict(_registry()[0])


def eval_suites() -> dict[str, Suite]:
    """Every suite in the data, by name."""
    return dict(_registry()[1])


@dataclass(frozen=True, kw_only=True)
class TaskRun:
    """A task at a few-shot setting."""

    task: EvalTask
    num_fewshot: int


def resolve_evals(evals: str | Iterable[str]) -> tuple[TaskRun, ...]:
    """Turn ``"mmlu,gsm8k:8,open_llm_leaderboard"`` (or a list) into task runs, suites expanded, duplicates dropped.

    ``all`` is every task at its harness default; ``NAME:K`` sets the few-shot count.

    Raises:
        UnknownNameError: A name is neither a suite nor a task (the message suggests close names
            and lists the suites).
        InvalidArgumentError: A bad few-shot count or an empty list.
    """
    tasks, suites = _registry()
    names = [x.strip() for x in (evals.split(",") if isinstance(evals, str) else evals)]
    names = [x for x in names if x]
    if not names:
        raise InvalidArgumentError("eval", evals, "suite or task names, comma-separated (or 'all')")
    runs: dict[tuple[str, int], TaskRun] = {}

    def add(task: EvalTask, shots: int | None) -> None:
        k = task.num_fewshot if shots is None else shots
        runs.setdefault((task.name, k), TaskRun(task=task, num_fewshot=k))

    for item in names:
        name, sep, shots_text = item.partition(":")
        shots: int | None = None
        if sep:
            if not shots_text.isdigit():
                raise InvalidArgumentError("eval", item, "NAME or NAME:K with K a few-shot count >= 0")
            shots = int(shots_text)
        key = name.lower().replace("-", "_")
        if key == "all":
            for task in tasks.values():
                add(task, shots)
        elif key in suites:
            for task_name, override in suites[key].tasks:
                add(tasks[task_name], shots if shots is not None else override)
        elif key in tasks:
            add(tasks[key], shots)
        else:
            raise _unknown(name, tasks, suites)
    return tuple(runs.values())


def _unknown(name: str, tasks: dict[str, EvalTask], suites: dict[str, Suite]) -> UnknownNameError:
    names = list(dict.fromkeys([*suites, *tasks]))
    err = UnknownNameError("eval", name, names)
    listing = ", ".join(["all", *suites])
    close = close_matches(name.lower(), names)
    message = f"unknown eval {excerpt(name)}" + (f"; did you mean {', '.join(close)}?" if close else "")
    message += f" Suites: {listing}; or a task name of one (hfge plan --eval-list)"
    EstimatorError.__init__(err, message)
    return err


# --------------------------------------------------------------------------- demand of one task


@dataclass(frozen=True, kw_only=True)
class TaskDemand:
    """What one task asks of the engine, and how long it takes on the plan's GPUs.

    Attributes:
        task, num_fewshot: What runs.
        kind: Scoring kind.
        requests: Requests the harness builds (log-likelihood: documents x choices; generation:
            documents x repeats).
        forwards: Model calls that process a context (the HF backend scores the single-token
            choices of a document in one forward; vLLM runs one per request).
        prompt_tokens: Mean context tokens of one request.
        processed_tokens: Prompt tokens the engine computes in total (prefill).
        generated_tokens: Tokens decoded in total (0 for log-likelihood: vLLM's one sampled token comes
            out of the prefill, and the HF backend samples none).
        batch_size: Sequences per forward (transformers) or concurrent sequences (vLLM decode).
        prefill_seconds, decode_seconds, seconds: Wall time on one replica.
        tokens_estimated: The token lengths are estimates (see the data's ``tokens_basis``).
    """

    task: str
    num_fewshot: int
    kind: str
    examples: int
    requests: int
    forwards: int
    prompt_tokens: float
    processed_tokens: float
    generated_tokens: float
    batch_size: int
    prefill_seconds: float
    decode_seconds: float
    tokens_estimated: bool
    source: str

    @property
    def seconds(self) -> float:
        return self.prefill_seconds + self.decode_seconds

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "num_fewshot": self.num_fewshot, "kind": self.kind, "examples": self.examples,
                "requests": self.requests, "forwards": self.forwards, "prompt_tokens": self.prompt_tokens,
                "processed_tokens": self.processed_tokens, "generated_tokens": self.generated_tokens,
                "batch_size": self.batch_size, "prefill_seconds": self.prefill_seconds,
                "decode_seconds": self.decode_seconds, "seconds": self.seconds,
                "tokens_estimated": self.tokens_estimated, "source": self.source}


def task_demand(run: TaskRun, engine: str = "vllm") -> tuple[int, int, float, float, float]:
    """``(requests, forwards, prompt tokens per request, processed tokens, generated tokens)`` of a task run.

    Log-likelihood: one request per choice with context + continuation (lm-eval ``multiple_choice``).
    ``transformers`` groups the requests of a document whose choices are single tokens into one
    forward (lm-eval's logits cache, ``Collator(group_by="contexts")``); vLLM scores each request
    with ``prompt_logprobs`` and skips its prefix cache for such requests
    (vllm/v1/core/kv_cache_manager.py ``get_computed_blocks``), so every request is a full prefill.
    Generation: ``documents x repeats`` requests; vLLM's prefix cache computes a fixed few-shot
    block once per task, transformers recomputes it for every request.
    """
    _engine(engine)
    t, k = run.task, run.num_fewshot
    prompt = t.prompt_tokens(k)
    if t.kind == "loglikelihood":
        requests = math.ceil(t.examples * t.choices) * t.repeats
        grouped = engine == "transformers" and t.single_token_choices and t.shared_context
        forwards = t.examples * t.repeats if grouped else requests
        per_forward = prompt + t.continuation_tokens
        return requests, forwards, prompt, forwards * per_forward, 0.0  # the scored token comes out of the prefill
    requests = t.examples * t.repeats
    processed = requests * prompt
    if engine == "vllm" and t.fewshot_fixed:
        shared = t.shared_prefix_tokens(k)
        processed -= (requests - 1) * shared
    generated = requests * min(t.generated_tokens, t.max_gen_toks)
    return requests, requests, prompt, processed, generated


def _engine(engine: str) -> str:
    if engine not in EVAL_ENGINES:
        raise InvalidArgumentError("engine", engine, " or ".join(EVAL_ENGINES) + " for an evaluation plan")
    return engine


# --------------------------------------------------------------------------- the plan on one GPU type


@dataclass(frozen=True, kw_only=True)
class EvalPlan:
    """An evaluation on one GPU type: per-task demand and the totals.

    Attributes:
        model: Model id.
        gpu: Catalog name.
        engine: ``vllm`` or ``transformers``.
        num_gpus: GPUs of one replica (tensor parallel; the fewest that hold the model).
        tasks: One per task run.
        device_total_bytes: Per-device memory of the engine at its batch (transformers: the largest
            batch used; vLLM: the whole ``gpu_memory_utilization`` share).
        weights_bytes: Per device.
        kv_cache_tokens: vLLM's KV pool in tokens (``None`` for transformers).
        hourly_usd: The replica's price, ``None`` without a catalog price.
        assumptions: How the numbers were made.
    """

    model: str
    gpu: str
    engine: str
    num_gpus: int
    tasks: tuple[TaskDemand, ...]
    device_total_bytes: int
    weights_bytes: int
    kv_cache_tokens: int | None
    hourly_usd: float | None
    assumptions: tuple[str, ...]

    @property
    def processed_tokens(self) -> float:
        return sum(t.processed_tokens for t in self.tasks)

    @property
    def generated_tokens(self) -> float:
        return sum(t.generated_tokens for t in self.tasks)

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.tasks)

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    @property
    def gpu_hours(self) -> float:
        return self.hours * self.num_gpus

    @property
    def cost_usd(self) -> float | None:
        return None if self.hourly_usd is None else self.hourly_usd * self.hours

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "gpu": self.gpu, "engine": self.engine, "num_gpus": self.num_gpus,
                "tasks": [t.to_dict() for t in self.tasks],
                "total": {"requests": sum(t.requests for t in self.tasks),
                          "forwards": sum(t.forwards for t in self.tasks),
                          "processed_tokens": self.processed_tokens, "generated_tokens": self.generated_tokens,
                          "seconds": self.seconds, "hours": self.hours, "gpu_hours": self.gpu_hours,
                          "cost_usd": self.cost_usd},
                "memory": {"device_total_bytes": self.device_total_bytes, "weights_bytes": self.weights_bytes,
                           "kv_cache_tokens": self.kv_cache_tokens},
                "hourly_usd": self.hourly_usd, "assumptions": list(self.assumptions)}


def _inference(workload: Workload | None) -> Workload:
    from hf_gpu_estimator.workload import make_workload

    w = workload if workload is not None else make_workload()
    if w.is_training:
        raise InvalidArgumentError("task", w.task, "'inference' for an evaluation plan")
    return w


def _per_token_prefill(spec: ModelSpec, w: Workload, gpu: GPU, length: int, batch: int) -> float:
    """Seconds per prompt token of a forward over ``batch`` contexts of ``length`` tokens."""
    return prefill_seconds(spec, w, gpu, batch_size=batch, prompt_tokens=length) / (batch * length)


def plan_eval(spec: ModelSpec, workload: Workload | None, gpu: GPU | str, evals: str | Iterable[str] | Sequence[TaskRun],
              *, engine: str = "vllm", gpu_memory_utilization: float | None = None) -> EvalPlan:
    """Size an evaluation of ``spec`` on ``gpu`` with lm-evaluation-harness driving ``engine``.

    Args:
        spec: The model.
        workload: Inference settings (dtype, quantization, kv_cache_dtype); ``None`` for the defaults.
        gpu: A GPU type; the replica uses the fewest of them that hold the model (tensor parallel).
        evals: Suite/task names (``resolve_evals``) or resolved runs.
        engine: ``vllm`` (continuous batching, the harness's ``--model vllm``) or ``transformers``
            (``--model hf --batch_size auto``).
        gpu_memory_utilization: vLLM's setting (default 0.9).

    Raises:
        InfeasiblePlanError: The model does not fit the GPU type even at tensor parallel 8.
        MissingGPUDataError: The GPU lacks a FLOP/s figure for the compute dtype.
    """
    _engine(engine)
    g = get_gpu(gpu)
    no_backend = unsupported_engine(engine, g)
    if no_backend:
        raise InfeasiblePlanError(no_backend, reasons=(no_backend,))
    w0, fallback = fp16_fallback(spec, _inference(workload), g)
    runs = tuple(evals) if isinstance(evals, Sequence) and evals and isinstance(evals[0], TaskRun) else resolve_evals(evals)  # type: ignore[arg-type]
    longest = max(int(r.task.prompt_tokens(r.num_fewshot) + r.task.continuation_tokens) for r in runs)
    longest_gen = max((min(r.task.generated_tokens, r.task.max_gen_toks) for r in runs), default=0)
    util = DEFAULT_GPU_MEMORY_UTILIZATION if gpu_memory_utilization is None else gpu_memory_utilization
    # the one fit: the fewest GPUs on which the engine starts with room for the longest request
    template = Deployment(gpu=g, engine="vllm" if engine == "vllm" else None, gpu_memory_utilization=util,
                          max_model_len=max(1, longest + int(longest_gen)) if engine == "vllm" else None)
    par = min_gpus(spec, w0.with_(seq_len=max(1, longest), new_tokens=int(longest_gen), batch_size=1), template)
    tp = par.tp * par.pp
    w = w0.with_(parallelism=Parallelism(num_gpus=tp, tp=par.tp, pp=par.pp))
    assumptions = [f"one replica of {tp} x {g.name} ({par.description}); more replicas (lm-eval data_parallel_size) "
                   "divide the wall time, not the GPU-hours",
                   "token lengths are cl100k_base tokens from data/eval_suites.json; tasks marked estimated use "
                   "typical field lengths, not a measurement"]
    if fallback:
        assumptions.append(fallback)
    demands: list[TaskDemand] = []
    kv_tokens: int | None = None
    if engine == "vllm":
        cap = par.verdict.serving if par.verdict is not None else None
        if cap is None or not cap.fits:
            raise InfeasiblePlanError(f"vLLM has no KV room for one {longest + int(longest_gen)}-token request of "
                                      f"{spec.id} on {tp} x {g.name}", reasons=("kv pool too small",))
        kv_tokens = cap.kv_cache_tokens
        device_total = int(cap.total_memory_bytes * util)
        weights = cap.weights_bytes
        budget = cap.max_num_batched_tokens
        for r in runs:
            req, fwd, prompt, processed, generated = task_demand(r, engine)
            length = max(1, int(round(prompt + r.task.continuation_tokens)))
            batch = max(1, budget // length)
            prefill = processed * _per_token_prefill(spec, w, g, length, batch)
            decode = 0.0
            conc = batch
            if generated:
                per_seq = generated / req
                ctx = int(prompt + per_seq)
                conc = max(1, min(cap.max_num_seqs, cap.kv_cache_tokens // max(1, ctx), req))
                steps = generated / conc
                decode = steps * decode_step_seconds(spec, w, g, batch_size=conc, context_tokens=int(prompt + per_seq / 2))
            demands.append(TaskDemand(task=r.task.name, num_fewshot=r.num_fewshot, kind=r.task.kind,
                                      examples=r.task.examples, requests=req, forwards=fwd, prompt_tokens=prompt,
                                      processed_tokens=processed, generated_tokens=generated, batch_size=conc,
                                      prefill_seconds=prefill, decode_seconds=decode,
                                      tokens_estimated=r.task.tokens_estimated, source=r.task.source))
        assumptions += [
            f"vLLM: KV pool {cap.kv_cache_tokens} tokens, {cap.max_num_batched_tokens} tokens per scheduler step, "
            f"up to {cap.max_num_seqs} sequences (vllm_batch_defaults); prefill steps full of prompts at the "
            "roofline's prefill MFU",
            "vLLM log-likelihood: one request per choice with prompt_logprobs, no prefix-cache reuse "
            "(vllm/v1/core/kv_cache_manager.py); generation: fixed few-shot blocks computed once (prefix cache)",
            "prefill and decode times added (chunked prefill overlaps them: an upper bound)",
        ]
    else:
        device_total = 0
        weights = 0
        for r in runs:
            req, fwd, prompt, processed, generated = task_demand(r, engine)
            per_seq = generated / req if generated else 0.0
            length = max(1, int(round(prompt + r.task.continuation_tokens)))
            longest_answer = int(min(r.task.max_gen_toks, math.ceil(per_seq * HF_LONGEST_OVER_MEAN))) if generated else 0
            wt = w.with_(seq_len=length, new_tokens=longest_answer)
            batch = min(HF_MAX_BATCH_SIZE, max_batch_size(spec, wt, g), fwd)
            if batch < 1:
                raise InfeasiblePlanError(f"{spec.id} cannot run a {length}-token request of {r.task.name} on "
                                          f"{tp} x {g.name}", reasons=("batch 1 does not fit",))
            est = estimate_memory(spec, wt.with_(batch_size=batch), detail=False)
            device_total = max(device_total, device_total_on(est, g))
            weights = est.components.get("weights", weights) if hasattr(est, "components") else weights
            batches = math.ceil(fwd / batch)
            prefill = batches * prefill_seconds(spec, wt, g, batch_size=batch, prompt_tokens=length)
            decode = 0.0
            if generated:
                decode = batches * longest_answer * decode_step_seconds(
                    spec, wt, g, batch_size=batch, context_tokens=int(prompt + longest_answer / 2))
            demands.append(TaskDemand(task=r.task.name, num_fewshot=r.num_fewshot, kind=r.task.kind,
                                      examples=r.task.examples, requests=req, forwards=fwd, prompt_tokens=prompt,
                                      processed_tokens=processed, generated_tokens=generated, batch_size=batch,
                                      prefill_seconds=prefill, decode_seconds=decode,
                                      tokens_estimated=r.task.tokens_estimated, source=r.task.source))
        if not weights:
            weights = estimate_memory(spec, w.with_(seq_len=1, new_tokens=0)).components.get("weights", 0)
        assumptions += [
            f"transformers (lm-eval --model hf --batch_size auto): the largest batch that fits, at most "
            f"{HF_MAX_BATCH_SIZE}; requests sorted by length, so padding is ignored",
            "log-likelihood: single-token choices of one document share a forward (logits cache)",
            f"generation: static batches decode until their longest answer, taken as {HF_LONGEST_OVER_MEAN:g}x the "
            "mean (capped at max_gen_toks)",
            "roofline time: Python and generate() overheads are not modelled (a lower bound for transformers)",
        ]
    try:
        hourly: float | None = hourly_cost_usd(g, tp)
    except MissingGPUDataError:
        hourly = None
        assumptions.append(f"{g.name} has no catalog price: cost left out")
    return EvalPlan(model=spec.id, gpu=g.name, engine=engine, num_gpus=tp, tasks=tuple(demands),
                    device_total_bytes=int(device_total), weights_bytes=int(weights), kv_cache_tokens=kv_tokens,
                    hourly_usd=hourly, assumptions=tuple(assumptions))


# --------------------------------------------------------------------------- cheapest GPU type


@dataclass(frozen=True, kw_only=True)
class CheapestEval:
    """Evaluation plans ranked by total $, and the GPU types left out with the reason."""

    options: tuple[EvalPlan, ...]
    skipped: tuple[tuple[str, str], ...]

    @property
    def best(self) -> EvalPlan:
        return self.options[0]

    def to_dict(self) -> dict[str, Any]:
        return {"options": [o.to_dict() for o in self.options],
                "skipped": [{"gpu": g, "reason": r} for g, r in self.skipped]}


def cheapest_eval(spec: ModelSpec, workload: Workload | None, evals: str | Iterable[str], *, engine: str = "vllm",
                  gpus: Iterable[str | GPU] | None = None) -> CheapestEval:
    """Rank the priced GPU types by the $ of the whole evaluation (one replica each).

    Raises:
        InfeasiblePlanError: No priced GPU type can run it.
    """
    runs = resolve_evals(evals)
    options: list[EvalPlan] = []
    skipped: list[tuple[str, str]] = []
    for g in (list(list_gpus()) if gpus is None else [get_gpu(x) for x in gpus]):
        if g.price_per_hour_usd is None:
            skipped.append((g.name, "no price in the catalog"))
            continue
        try:
            options.append(plan_eval(spec, workload, g, runs, engine=engine))
        except (InfeasiblePlanError, MissingGPUDataError) as e:
            skipped.append((g.name, str(e)))
    if not options:
        raise InfeasiblePlanError(f"no priced GPU can evaluate {spec.id}: "
                                  + "; ".join(f"{g}: {r}" for g, r in skipped[:4]), reasons=[r for _, r in skipped])
    options.sort(key=lambda p: (p.cost_usd or math.inf, p.hours))
    return CheapestEval(options=tuple(options), skipped=tuple(skipped))
