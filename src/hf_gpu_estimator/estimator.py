"""The one-liner: ``estimate(model, **workload) -> Estimate``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hf_gpu_estimator.constants import COMMON_GPUS, DEFAULT_MARGIN
from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.memory import MemoryEstimate, estimate_memory
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.verdict import CONTEXT_KEY, Assumption, Verdict, replace_keyed, uncertainty_for
from hf_gpu_estimator.workload import Workload, workload_from_kwargs

if TYPE_CHECKING:
    from hf_gpu_estimator.hardware import GPU
    from hf_gpu_estimator.suggest import Suggestion

@dataclass(frozen=True, kw_only=True)
class Estimate:
    """The result of :func:`estimate`: the model, the normalized workload, memory per device."""

    spec: ModelSpec
    workload: Workload
    memory: MemoryEstimate
    gpu: GPU | None = None
    mode: str = "analytic"
    assumptions: tuple[str, ...] = field(default=())
    #: Every GPU given to :func:`estimate` (``gpu=`` a list); ``gpu`` is set when exactly one was.
    gpus: tuple[GPU, ...] = field(default=())
    #: The workload as asked, before the checkpoint's quantization was decided for a GPU: each GPU's
    #: verdict decides it again for that GPU (MXFP4 kept packed only where its kernels run).
    asked_workload: Workload | None = field(default=None, repr=False)
    #: What the device reports free (shared GPUs): verdicts are judged against it.
    free_memory_bytes: int | None = None

    @property
    def trainable_parameters(self) -> int:
        from hf_gpu_estimator.memory.weights import plan_weights

        if self.spec.architecture is None or not self.workload.is_training:
            return 0
        return plan_weights(self.spec, self.workload).trainable_params

    @property
    def device_total_range_bytes(self) -> tuple[int, int]:
        """``(low, high)``: the device total the measured error band allows (see :mod:`hf_gpu_estimator.verdict`)."""
        u = uncertainty_for(self.workload)
        total = self.memory.device_total_bytes
        return u.low_bytes(total), u.high_bytes(total)

    def verdict(self, gpu: str | GPU | None = None, *, margin: float = DEFAULT_MARGIN) -> Verdict:
        """Fits, tight or does not fit ``gpu``: the high end of the device-total range against its usable
        memory less ``margin`` (see :mod:`hf_gpu_estimator.verdict`).

        Args:
            gpu: a catalog name or GPU; default the ``gpu=`` given to :func:`estimate`.
            margin: share of the device memory left free (0 to 0.5).
        """
        from hf_gpu_estimator.planner.deployment import Deployment, fit, prepare

        target = self.target_gpu(gpu)
        p = self.workload.parallelism
        deployment = Deployment(gpu=target, tp=p.tp, pp=p.pp, num_gpus=p.num_gpus, margin=margin,
                                free_memory_bytes=self.free_memory_bytes)
        asked = self.asked_workload or self.workload
        here, _ = prepare(self.spec, asked, deployment)
        # the estimate's own memory (calibrated, or traced) where this GPU runs the same workload; fp16 in
        # place of bf16 (a GPU without bf16) takes the same bytes
        mine = self.workload
        same = (here == mine or here.with_(dtype=mine.dtype, precision=mine.precision) == mine) and (
            self.gpu is None or target == self.gpu)
        return fit(self.spec, asked, deployment, memory=self.memory if same else None)

    def verdicts(self, *, margin: float = DEFAULT_MARGIN) -> tuple[Verdict, ...]:
        """The verdict on every GPU judged: the ``gpu=`` given (one or a list), else
        :data:`~hf_gpu_estimator.constants.COMMON_GPUS` (what ``print(est)`` and the CLI show)."""
        return tuple(self.verdict(g, margin=margin) for g in self.judged_gpus)

    @property
    def judged_gpus(self) -> tuple[GPU, ...]:
        """The GPUs the verdict table shows: those given to :func:`estimate`, else the common ones."""
        from hf_gpu_estimator.hardware import get_gpu

        if self.gpus:
            return self.gpus
        return (self.gpu,) if self.gpu is not None else tuple(get_gpu(g) for g in COMMON_GPUS)

    def fits(self, gpu: str | GPU | None = None, *, margin: float = DEFAULT_MARGIN) -> bool:
        """Whether even the high end of the per-device total (what nvidia-smi would show) fits ``gpu``
        with ``margin`` to spare: ``verdict(gpu).verdict == "fits"``. Without ``gpu`` and with none (or
        several) given to :func:`estimate`: whether it fits at least one of :attr:`judged_gpus`."""
        if gpu is None and self.gpu is None:
            return any(v.fits for v in self.verdicts(margin=margin))
        return self.verdict(gpu, margin=margin).fits

    def headroom_bytes(self, gpu: str | GPU | None = None, *, margin: float = DEFAULT_MARGIN) -> int:
        """Memory left on ``gpu`` at the high end, after the margin (negative: missing); the verdict's basis."""
        return self.verdict(gpu, margin=margin).headroom_bytes

    def _deployment(self, gpu: str | GPU | None, margin: float) -> Any:
        from hf_gpu_estimator.planner.deployment import Deployment

        p = self.workload.parallelism
        return Deployment(gpu=self.target_gpu(gpu), tp=p.tp, pp=p.pp, num_gpus=p.num_gpus, margin=margin,
                          free_memory_bytes=self.free_memory_bytes)

    def max_batch_size(self, gpu: str | GPU | None = None, *, margin: float = DEFAULT_MARGIN) -> int:
        """The largest per-device batch of this workload whose verdict on ``gpu`` is "fits"
        (:func:`planner.max_batch_size`, asking the same :func:`~hf_gpu_estimator.planner.deployment.fit`)."""
        from hf_gpu_estimator.planner import max_batch_size

        return max_batch_size(self.spec, self.asked_workload or self.workload, self._deployment(gpu, margin))

    def max_seq_len(self, gpu: str | GPU | None = None, *, margin: float = DEFAULT_MARGIN) -> int:
        """The longest sequence (training) or prompt (inference) whose verdict on ``gpu`` is "fits"."""
        from hf_gpu_estimator.planner import max_seq_len

        return max_seq_len(self.spec, self.asked_workload or self.workload, self._deployment(gpu, margin))

    def min_gpus(self, gpu: str | GPU | None = None, *, margin: float = DEFAULT_MARGIN) -> int:
        """The fewest GPUs of type ``gpu`` on which the verdict is "fits" (see :func:`planner.min_gpus` for the split).

        Raises:
            InfeasiblePlanError: Nothing tried fits.
        """
        from hf_gpu_estimator.planner import min_gpus

        return min_gpus(self.spec, self.asked_workload or self.workload, self._deployment(gpu, margin)).num_gpus

    def target_gpu(self, gpu: str | GPU | None = None) -> GPU:
        """``gpu`` resolved in the catalog, or the ``gpu=`` given to :func:`estimate`."""
        from hf_gpu_estimator.hardware import get_gpu

        if gpu is None:
            if self.gpu is None:
                names = ", ".join(g.name for g in self.judged_gpus)
                raise InvalidArgumentError("gpu", None, f"one GPU name (estimate(..., gpu=...) or a GPU of {names})")
            return self.gpu
        return get_gpu(gpu)

    def to_dict(self, *, gpus: Sequence[str | GPU] | None = None, suggestions: Sequence[Suggestion] = ()) -> dict[str, Any]:
        """The JSON contract of DESIGN.md.

        Args:
            gpus: the GPUs to give a verdict for (``gpus`` list); default the ``gpu=`` given to
                :func:`estimate`, else :data:`~hf_gpu_estimator.constants.COMMON_GPUS`.
            suggestions: changes that would make it fit (``suggestions`` list), from :func:`suggest.suggest`.
        """
        spec = self.spec
        arch = spec.architecture
        model: dict[str, Any] = {
            "id": spec.id,
            "parameters": spec.parameters.total,
            "trainable_parameters": self.trainable_parameters,
            "active_parameters": spec.parameters.active,
            "parameters_by_role": dict(spec.parameters.by_role),
            "stored_dtype": spec.stored_dtype,
            "model_type": arch.model_type if arch else None,
            "provenance": dict(spec.provenance),
        }
        if spec.source_url:
            model["source"] = spec.source_url
        memory = self.memory.to_dict()
        memory["device_total_range_bytes"] = list(self.device_total_range_bytes)
        targets = list(gpus) if gpus is not None else list(self.judged_gpus)
        out: dict[str, Any] = {
            "model": model,
            "workload": self.workload.to_dict(),
            "mode": self.mode,
            "memory": memory,
            "gpus": [self.verdict(g).to_dict() for g in targets],
            "suggestions": [s.to_dict() for s in suggestions],
            "assumptions": list(self.assumptions),
        }
        if self.gpu is not None:
            v = self.verdict()
            out["gpu"] = {"name": self.gpu.name, "usable_memory_bytes": self.gpu.usable_memory_bytes,
                          "fits": v.fits, "verdict": v.verdict, "headroom_bytes": v.headroom_bytes}
        return out

    def plot(self, path: str | os.PathLike[str] | None = None, *,
             gpus: Sequence[str | GPU] = COMMON_GPUS) -> Any:
        """A stacked bar of the memory components against the capacity of ``gpus`` (needs the ``[plot]`` extra).

        Args:
            path: where to save a PNG; ``None`` returns the matplotlib Figure instead.
            gpus: GPU catalog names drawn as capacity lines (the estimate's own ``gpu=`` is added).

        Returns:
            The saved path, or the Figure when ``path`` is ``None``.
        """
        from hf_gpu_estimator.plots import memory_bar

        names = list(gpus)
        if self.gpu is not None and self.gpu.name not in names:
            names.append(self.gpu)
        return memory_bar(self, path=path, gpus=names)

    def __str__(self) -> str:
        """The CLI's table: the breakdown, the range and the verdict on every judged GPU."""
        from hf_gpu_estimator.report import render_sections

        return render_sections(self._sections(), "text")

    def __repr__(self) -> str:
        """One line: the model, the workload and the device total with its range."""
        from hf_gpu_estimator.report import gib, gib_range, workload_line

        low, high = self.device_total_range_bytes
        gpu = "".join(f", {v.name}: {v.verdict}" for v in self.verdicts()) if self.gpus or self.gpu else ""
        return (f"Estimate({self.spec.id!r}, {workload_line(self)}: device total {gib(self.memory.device_total_bytes)} "
                f"({gib_range(low, high)}){gpu})")

    def _sections(self) -> list[Any]:
        from hf_gpu_estimator.report import estimate_sections

        return estimate_sections(self, gpus=self.judged_gpus)

    def _repr_markdown_(self) -> str:
        from hf_gpu_estimator.report import render_sections

        return render_sections(self._sections(), "markdown")

    def _repr_html_(self) -> str:
        from hf_gpu_estimator.report import render_sections

        return render_sections(self._sections(), "html")


#: Model types whose positions are a learned table of ``max_position_embeddings`` rows, so a longer
#: context cannot run (an index error); each names the table in transformers' modeling code. Other
#: models (rotary, ALiBi) run past ``max_position_embeddings``, beyond the length they were trained on.
LEARNED_POSITION_TABLES: Mapping[str, str] = {
    "gpt2": "GPT2Model.wpe (nn.Embedding(max_position_embeddings, ...))",
    "gpt_bigcode": "GPTBigCodeModel.wpe",
    "gpt_neo": "GPTNeoModel.wpe",
    "opt": "OPTLearnedPositionalEmbedding",
    "biogpt": "BioGptLearnedPositionalEmbedding",
    "bert": "BertEmbeddings.position_embeddings",
    "roberta": "RobertaEmbeddings.position_embeddings",
    "distilbert": "Embeddings.position_embeddings",
    "whisper": "WhisperDecoder.embed_positions",
}


def fit_context(spec: ModelSpec, options: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Fit the workload's context into the model's positions (``max_position_embeddings``).

    The defaults (1024 tokens, 256 generated) shrink to fit, with a note. An explicit context past
    the limit is an error naming it when the positions are a learned table (:data:`LEARNED_POSITION_TABLES`:
    it cannot run); with computed positions (rotary, ALiBi) it runs past the trained length, so it is a
    warning and a note.

    Returns:
        The options with ``seq_len``/``new_tokens`` filled in where a default had to shrink, and the notes.

    Raises:
        ConflictingOptionsError: An explicit ``seq_len`` (+ ``new_tokens`` in inference) exceeds a
            learned position table.
    """
    from hf_gpu_estimator.errors import ConflictingOptionsError
    from hf_gpu_estimator.workload import DEFAULT_NEW_TOKENS, DEFAULT_SEQ_LEN

    out = dict(options)
    limit = spec.architecture.max_position_embeddings if spec.architecture is not None else None
    seq, new = out.get("seq_len"), out.get("new_tokens")
    if not limit or not isinstance(seq, (int, type(None))) or not isinstance(new, (int, type(None))):
        return out, ()  # no limit known, or bad values make_workload will name
    method = out.get("method")
    training = out.get("task", None if method in (None, "full") else "training") == "training"
    where = f"the model's limit of {limit:,} tokens (max_position_embeddings of {spec.id})"
    learned = spec.architecture.model_type in LEARNED_POSITION_TABLES
    notes: list[str] = []

    def too_long(field: str, value: int, what: str, fix: str) -> None:
        if learned:
            raise ConflictingOptionsError(field, value, f"{what} exceeds {where}".strip(), fix=fix)
        note = (f"{field}: {what.strip() or value} goes past {where}; its positions are computed, so it runs, "
                "but beyond the length the model was trained on")
        import warnings

        warnings.warn(note, stacklevel=3)
        notes.append(note)

    if seq is not None and seq > limit:
        too_long("seq_len", seq, "", f"use --seq-len {limit} or less")
    if training:
        if seq is None and DEFAULT_SEQ_LEN > limit:
            out["seq_len"] = limit
            notes.append(f"seq_len: {limit:,} tokens, {where} (the default {DEFAULT_SEQ_LEN:,} is longer)")
        return out, tuple(notes)
    if new is not None and seq is not None and seq + new > limit and seq <= limit:
        too_long("seq_len", seq, f"{seq} + new_tokens {new}", f"use --seq-len {max(limit - new, 1)} or less, or fewer --new-tokens")
    if new is not None and seq is None and new >= limit:
        too_long("new_tokens", new, "", f"use --new-tokens {limit // 4} or less")
    if new is None:
        if seq is not None and seq >= limit:  # past the limit already (computed positions, warned)
            return out, tuple(notes)
        new = min(DEFAULT_NEW_TOKENS, limit - seq if seq is not None else limit // 4)
        if new != DEFAULT_NEW_TOKENS:
            out["new_tokens"] = new
            notes.append(f"new_tokens: {new:,} generated tokens (not {DEFAULT_NEW_TOKENS}) to stay within {where}")
    if seq is None and DEFAULT_SEQ_LEN + new > limit:
        out["seq_len"] = max(limit - new, 1)
        notes.append(f"seq_len: {out['seq_len']:,} prompt tokens (not {DEFAULT_SEQ_LEN:,}) to stay within {where}")
    return out, tuple(notes)


def estimate(model: Any, *, gpu: str | GPU | Sequence[str | GPU] | None = None, revision: str | None = None,
             token: str | None = None, mode: str = "analytic", calibration: Any = None,
             free_memory_bytes: int | None = None, **workload: Any) -> Estimate:
    """Estimate the GPU memory ``model`` needs for a workload.

    Args:
        model: a Hub id, a local path, a config dict, a ``PretrainedConfig``, a ModelSpec or a live
            ``torch.nn.Module``.
        gpu: a GPU catalog name to check against (``est.fits()``), or a list of them (each judged on its
            own; ``"A,B"`` as on the CLI); with one GPU, a calibration measured on it (see
            :mod:`hf_gpu_estimator.calibration`) sets the reserved and CUDA-context overheads.
        free_memory_bytes: what the device reports free (a shared GPU); verdicts are judged against it.
        revision, token: for Hub ids.
        mode: ``"analytic"`` (default, pure arithmetic) or ``"exact"`` (trace the real transformers
            code on fake tensors; needs the ``torch`` extra).
        calibration: a calibrated device name ("NVIDIA H200") or a ``DeviceCalibration`` to take the
            non-tensor overheads from; ``None`` (default): the ``gpu``'s calibration if there is one;
            ``False``: never. It never changes the tensor terms.
        **workload: the CLI's options as keywords: task, method, batch_size, seq_len, new_tokens,
            dtype, precision, optimizer, gradient_checkpointing, attn_implementation, quantization,
            lora_rank, lora_targets, num_gpus, strategy, tp, pp, ...

    Returns:
        An :class:`Estimate`; ``print(est)`` shows a table, ``est.to_dict()`` the JSON contract.

    Example:
        >>> est = estimate("meta-llama/Llama-2-7b-hf", batch_size=1, seq_len=512, new_tokens=64)
        >>> est.memory.components["weights"] == 6_738_415_616 * 2
        True
    """
    from hf_gpu_estimator.sources import inspect_model

    if mode not in ("analytic", "exact"):
        raise InvalidArgumentError("mode", mode, "'analytic' or 'exact'")
    if mode == "exact":
        from hf_gpu_estimator.exact import inspect_for_exact

        spec = inspect_for_exact(model, revision=revision, token=token)
    else:
        spec = inspect_model(model, revision=revision, token=token)
    options, context_notes = fit_context(spec, workload)
    work = workload_from_kwargs(options)
    asked = work
    resolved = resolve_gpus(gpu)
    resolved_gpu = resolved[0] if len(resolved) == 1 else None
    from hf_gpu_estimator.memory.weights import resolve_quantization

    # The checkpoint's own quantization (and, for MXFP4, whether --gpu runs its kernels) decides how
    # the weights load; the workload then shows it (JSON workload.quantization, the table header).
    work, loaded = resolve_quantization(spec, work, gpu=resolved_gpu)
    memory = estimate_memory(spec, work)
    if resolved_gpu is not None and resolved_gpu.context_bytes is not None:
        memory = _with_device_context(memory, resolved_gpu)
    assumptions = (*context_notes, *spec.assumptions, *loaded, *memory.assumptions)
    if mode == "exact":
        from hf_gpu_estimator.exact import exact_memory

        memory, extra = exact_memory(spec, work, analytic=memory)
        assumptions = (*context_notes, *spec.assumptions, *loaded, *memory.assumptions, *extra)
    if calibration is not None or resolved_gpu is not None:
        from hf_gpu_estimator.calibration import apply_calibration, resolve_calibration

        device_calibration = resolve_calibration(calibration, resolved_gpu)
        if device_calibration is not None:
            memory, assumptions = apply_calibration(memory, work, device_calibration, assumptions)
    return Estimate(spec=spec, workload=work, memory=memory, gpu=resolved_gpu, mode=mode, assumptions=assumptions,
                    gpus=resolved, asked_workload=asked, free_memory_bytes=free_memory_bytes)


def resolve_gpus(gpu: str | GPU | Sequence[str | GPU] | None) -> tuple[GPU, ...]:
    """``gpu=`` as catalog entries, in order, without repeats: a name, ``"A,B"``, a GPU, or a list of them."""
    from hf_gpu_estimator.hardware import GPU as GPUType
    from hf_gpu_estimator.hardware import get_gpu

    if gpu is None:
        return ()
    if isinstance(gpu, (str, GPUType)):
        items: list[Any] = [gpu]
    elif isinstance(gpu, (list, tuple)):
        items = list(gpu)
    else:
        raise InvalidArgumentError("gpu", gpu, "a GPU catalog name, a GPU, or a list of them")
    out: dict[str, GPUType] = {}
    for item in items:
        names = [n.strip() for n in item.split(",")] if isinstance(item, str) else [item]
        for name in names:
            if isinstance(name, str) and not name:
                raise InvalidArgumentError("gpu", gpu, "catalog names separated by commas, none empty")
            entry = get_gpu(name)
            out.setdefault(entry.name, entry)
    if not out:
        raise InvalidArgumentError("gpu", gpu, "at least one GPU name")
    return tuple(out.values())


def _with_device_context(memory: MemoryEstimate, gpu: GPU) -> MemoryEstimate:
    """``memory`` with the device runtime's own context in place of the CUDA default (Apple: none)."""
    from hf_gpu_estimator.memory.overhead import device_total_on, runtime_context_bytes

    context = runtime_context_bytes(gpu)
    note = Assumption(key=CONTEXT_KEY, text=f"device total = reserved + {gpu.runtime} runtime context "
                      f"{context >> 20} MiB ({gpu.name} has no CUDA context; catalog context_bytes)")
    return replace(memory, device_total_bytes=device_total_on(memory, gpu), cuda_context_bytes=context,
                   assumptions=replace_keyed(memory.assumptions, note))
