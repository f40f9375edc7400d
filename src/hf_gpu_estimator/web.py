"""The web calculator (the ``[web]`` extra, Gradio): ``hfge serve`` locally, or ``app.py`` as a Hugging Face Space.

:func:`calculate` is the whole computation (plain strings and a PNG path, testable without a
browser); :func:`build_app` only lays the form out around it. Models in the bundled catalog are
answered offline and instantly unless "read the Hub" is ticked.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hf_gpu_estimator.errors import EstimatorError, InvalidArgumentError, MissingDependencyError

if TYPE_CHECKING:
    from hf_gpu_estimator.estimator import Estimate
    from hf_gpu_estimator.verdict import Verdict

__all__ = ["DEFAULTS", "FLEET_EXAMPLE", "Result", "build_app", "calculate", "plan_fleet_markdown", "serve"]

#: The form's initial values (also the e2e test's inputs).
DEFAULTS: dict[str, Any] = {
    "model": "meta-llama/Llama-2-7b-hf", "task": "inference", "method": "full", "batch_size": 1, "seq_len": 1024,
    "new_tokens": 256, "dtype": "checkpoint", "precision": "bf16-mixed", "optimizer": "adamw",
    "gradient_checkpointing": False, "quantization": "none", "gpu": "A100-80GB-SXM", "num_gpus": 1,
    "read_hub": False, "request_rate": 1.0, "token_budget": 1e9,
}  # fmt: skip
DTYPES = ("checkpoint", "bfloat16", "float16", "float32")
PRECISIONS = ("bf16-mixed", "16-mixed", "32-true", "bf16-true", "16-true")
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit", "adafactor", "sgd", "lion")
QUANTIZATIONS = ("none", "int8", "nf4", "fp4", "fp8", "gptq-4bit", "awq-4bit", "gguf:Q4_K_M", "gguf:Q8_0")
#: Tables: headers never break inside a word, numbers never wrap, the first column (the words) wraps so
#: every number stays in view; a table still wider than its column scrolls. Text in the system's own
#: sans-serif: the theme's bundled Source Sans Pro draws some capitals of bold text as small capitals
#: ("GiB", "CUDA" in the verdict and the totals).
CSS = """
.gradio-container { --font: ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
.prose table { display: block; overflow-x: auto; max-width: 100%; }
.prose th { white-space: nowrap; word-break: keep-all; }
.prose td { white-space: nowrap; }
.prose td:first-child { white-space: normal; overflow-wrap: anywhere; min-width: 8em; }
"""
#: The form column's and the results column's narrowest widths (px): below their sum (a window under
#: about 1000 px) the results go under the form, at the full width of the page.
FORM_MIN_WIDTH = 320
RESULTS_MIN_WIDTH = 620
#: Traffic the cheapest-serving table is sized for, and the token budget of the cheapest-training one
#: (the form's defaults: both are fields of the page).
SERVING_REQUESTS_PER_S = DEFAULTS["request_rate"]
TRAINING_TOKENS = DEFAULTS["token_budget"]
#: The fleet tab's initial file (schema: :func:`hf_gpu_estimator.planner.plan_fleet`; YAML or JSON).
FLEET_EXAMPLE = """\
gpus: [H100-SXM-80GB, A100-80GB-SXM, L40S, L4]
models:
  - model: meta-llama/Llama-3.1-8B-Instruct
    request_rate: 2          # requests per second
    input_tokens: 1024
    output_tokens: 256
    tpot_ms: 50              # p50 time per output token
  - model: Qwen/Qwen2.5-7B
    token_budget: 1.0e+8     # a LoRA fine-tune on 100M tokens
    workload: {task: training, method: lora, batch_size: 4, seq_len: 2048, gradient_checkpointing: true}
"""


@dataclass(frozen=True, kw_only=True)
class Result:
    """What the page shows: markdown strings, a PNG path, and the figures behind them (``None`` on error).

    Attributes:
        estimate: the :class:`~hf_gpu_estimator.estimator.Estimate` (``None`` when the inputs were refused).
        verdict: the verdict on the chosen GPU (:class:`~hf_gpu_estimator.verdict.Verdict`).
        assumptions: what the estimate assumed, one markdown bullet each.
    """

    summary: str
    breakdown: str
    fits: str
    plan: str
    plot_path: str | None
    assumptions: str = ""
    estimate: Estimate | None = None
    verdict: Verdict | None = None


def _spec(model: str, *, read_hub: bool, token: str | None = None) -> Any:
    from hf_gpu_estimator.sources import inspect_model
    from hf_gpu_estimator.sources.catalog import lookup

    spec = None if read_hub else lookup(model)
    return spec if spec is not None else inspect_model(model, token=token or None)


def workload_kwargs(*, task: str, method: str, batch_size: float, seq_len: float, new_tokens: float, dtype: str,
                    precision: str, optimizer: str, gradient_checkpointing: bool, quantization: str,
                    num_gpus: float = 1) -> dict[str, Any]:
    """The form's values as :func:`~hf_gpu_estimator.estimator` keywords (numbers arrive as floats).

    Raises:
        InvalidArgumentError: a number that is empty (``None``), not finite, not whole or below its minimum.
    """
    training = task == "training"
    kwargs: dict[str, Any] = {
        "task": task, "method": method if training else "full", "batch_size": _whole("batch_size", batch_size),
        "seq_len": _whole("seq_len", seq_len),
        "new_tokens": _whole("new_tokens", new_tokens, minimum=0) if not training else 0,
        "dtype": None if dtype in ("checkpoint", "", None) else dtype,
        "precision": precision if training else None, "optimizer": optimizer,
        "gradient_checkpointing": bool(gradient_checkpointing) and training,
        "quantization": None if quantization in ("none", "", None) and method == "qlora" else quantization,
    }  # fmt: skip
    n = _whole("num_gpus", num_gpus)
    if n > 1:
        kwargs.update({"num_gpus": n, "strategy": "zero3"} if training else {"num_gpus": n, "tp": n})
    return kwargs


#: The largest whole number a form field takes: far above any batch, length or GPU count, small enough
#: that the arithmetic behind an estimate stays exact.
_MAX_FORM_NUMBER = 1 << 40


def _positive(field: str, value: object) -> float:
    """A form number that must be above zero and finite (a rate, a token budget)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= _MAX_FORM_NUMBER:  # fmt: skip
        raise InvalidArgumentError(field, value, f"a number above 0, up to {_MAX_FORM_NUMBER:,}")
    return float(value)


def _whole(field: str, value: object, *, minimum: int = 1) -> int:
    """A form number as an int: a whole, finite number from ``minimum`` up (an emptied field sends ``None``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or not minimum <= value <= _MAX_FORM_NUMBER:  # fmt: skip
        raise InvalidArgumentError(field, value, f"a whole number from {minimum} to {_MAX_FORM_NUMBER:,}")
    return int(value)


class _PlotFiles:
    """Where the charts go: one private directory per process holding the last :attr:`keep` charts.

    Gradio copies a returned image into its own cache once the answer is sent, so only recent files
    are needed; older ones are deleted as new ones arrive, and the directory when the process exits.
    """

    keep = 16

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._directory: str | None = None
        self._files: list[str] = []

    def new(self) -> str:
        with self._lock:
            if self._directory is None or not os.path.isdir(self._directory):
                import atexit
                import shutil

                self._directory = tempfile.mkdtemp(prefix="hfge-plots-")
                atexit.register(shutil.rmtree, self._directory, True)
            path = os.path.join(self._directory, f"memory-{uuid.uuid4().hex}.png")
            self._files.append(path)
            stale, self._files = self._files[: -self.keep], self._files[-self.keep :]
        for old in stale:
            try:
                os.unlink(old)
            except OSError:
                pass
        return path


_PLOTS = _PlotFiles()


def calculate(model: str, task: str, method: str, batch_size: float, seq_len: float, new_tokens: float, dtype: str,
              precision: str, optimizer: str, gradient_checkpointing: bool, quantization: str, gpu: str,
              num_gpus: float = 1, read_hub: bool = False, token: str = "",
              request_rate: float = SERVING_REQUESTS_PER_S, token_budget: float = TRAINING_TOKENS, *,
              plot_dir: str | None = None) -> Result:
    """Estimate, check the fit across GPUs, suggest changes, rank the cheapest GPUs; errors become a message.

    ``token`` is a Hub token for gated or private repos (used for this request only, never stored).
    ``request_rate`` (requests per second, of ``seq_len`` + ``new_tokens`` tokens) sizes the cheapest
    serving table, ``token_budget`` (tokens) the cheapest training one.
    """
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.hardware import get_gpu
    from hf_gpu_estimator.report import COMMON_GPUS, estimate_sections, gib, gib_range, render_sections
    from hf_gpu_estimator.suggest import suggest

    try:
        for field, text in (("model", model), ("gpu", gpu), ("token", token or "")):
            if not isinstance(text, str) or (field != "token" and not text.strip()):
                raise InvalidArgumentError(field, text, "a non-empty text" if field != "token" else "a text")
        spec = _spec(model.strip(), read_hub=read_hub, token=token.strip() if token else None)
        kwargs = workload_kwargs(task=task, method=method, batch_size=batch_size, seq_len=seq_len,
                                 new_tokens=new_tokens, dtype=dtype, precision=precision, optimizer=optimizer,
                                 gradient_checkpointing=gradient_checkpointing, quantization=quantization,
                                 num_gpus=num_gpus)
        rate, budget = _positive("request_rate", request_rate), _positive("token_budget", token_budget)
        est = estimate(spec, gpu=gpu, **kwargs)
        target = get_gpu(gpu)
        gpus = (target, *(g for g in (get_gpu(n) for n in COMMON_GPUS) if g.name != target.name))
        tips = suggest(est, target)
        sections = estimate_sections(est, gpus=gpus, suggestions=tips,
                                     suggestions_for=None if est.fits() else target)
    except (EstimatorError, ValueError, OSError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        return Result(summary=f"**Error:** {message}", breakdown="", fits="", plan="", plot_path=None)
    v = est.verdict()
    low, high = v.needs_low_bytes, v.needs_high_bytes  # the one fit's range on this GPU
    summary = (f"### {target.name}: {v.verdict} — needs {gib_range(low, high)} of {gib(v.limit_bytes)}\n\n"
               f"{spec.id}: {sections[0].notes[0]}. Estimate {gib(est.memory.device_total_bytes)} per device "
               f"(nvidia-smi), peak during **{est.memory.phase_at_peak}**; the range is the error measured on real "
               f"GPUs for this kind of run ({v.basis.split(':')[0]}); the verdict takes its high end against "
               f"{gib(v.limit_bytes)} ({v.margin:.0%} kept free).")
    breakdown = render_sections(sections[1:2], "markdown")
    fits = render_sections([s for s in sections[2:] if not (s.notes and "assumptions:" in s.notes[0])], "markdown")
    assumptions = "\n".join(f"- {a}" for a in est.assumptions)
    plan = _plan_markdown(est, request_rate=rate, token_budget=budget)
    plot_path = None
    try:
        target_path = os.path.join(plot_dir, "memory.png") if plot_dir else _PLOTS.new()
        plot_path = str(est.plot(target_path, gpus=[g.name for g in gpus]))
    except MissingDependencyError as e:
        fits += f"\n\n(no chart: {e})"
    return Result(summary=summary, breakdown=breakdown, fits=fits, plan=plan, plot_path=plot_path,
                  assumptions=assumptions, estimate=est, verdict=v)


def _plan_markdown(est: Any, *, request_rate: float = SERVING_REQUESTS_PER_S,
                   token_budget: float = TRAINING_TOKENS) -> str:
    """The planner's cheapest options for this workload (serving ``request_rate`` requests per second, or
    training on ``token_budget`` tokens)."""
    from hf_gpu_estimator import planner
    from hf_gpu_estimator.report import Section, render_sections

    w = est.workload
    try:
        if w.is_training:
            result: Any = planner.cheapest_training(est.spec, w, token_budget=token_budget)
            rows = tuple((o.gpu, str(o.parallelization.num_gpus), o.parallelization.strategy,
                          f"{o.speed.tokens_per_s:,.0f}", f"{o.hours:,.1f}", f"${o.hourly_usd:,.2f}",
                          f"${o.total_usd:,.0f}") for o in result.options[:5])
            header = ("gpu", "gpus", "strategy", "tokens/s", "hours", "$/hour", "total $")
            title = f"Cheapest GPUs to train on {token_budget:.3g} tokens"
        else:
            result = planner.cheapest_serving(est.spec, w, request_rate_per_s=request_rate,
                                              input_tokens=w.seq_len, output_tokens=max(1, w.new_tokens))
            rows = tuple((o.gpu, str(o.num_gpus), str(o.batch_size), f"{o.tpot_seconds * 1e3:.1f}",
                          f"${o.hourly_usd:,.2f}", f"${o.usd_per_million_output_tokens:,.3f}")
                         for o in result.options[:5])
            header = ("gpu", "gpus", "batch", "TPOT ms", "$/hour", "$/1M out")
            title = (f"Cheapest GPUs to serve {request_rate:g} request/s of {w.seq_len} + "
                     f"{w.new_tokens} tokens")
    except EstimatorError as e:
        return f"(no plan: {str(e).splitlines()[0]})"
    return render_sections([Section(title=title, header=header, rows=rows,
                                    notes=("catalog on-demand prices; `hfge plan MODEL --cheapest` for other targets",))],
                           "markdown")


def plan_fleet_markdown(text: str) -> str:
    """The fleet tab: a YAML or JSON fleet description -> one table per model and the fleet's total
    (what ``hfge plan --fleet FILE --format markdown`` prints); errors become one line."""
    from hf_gpu_estimator.planner import plan_fleet
    from hf_gpu_estimator.report import fleet_sections, render_sections
    from hf_gpu_estimator.sources.fleet import parse_fleet, validate_fleet

    try:
        result = plan_fleet(validate_fleet(parse_fleet(text)))
    except (EstimatorError, ValueError, OSError) as e:
        return f"**Error:** {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return render_sections(fleet_sections(result), "markdown")


def _gradio() -> Any:
    try:
        import gradio as gr
    except ImportError as e:
        raise MissingDependencyError("gradio", "web", "the web calculator") from e
    return gr


def build_app() -> Any:
    """The Gradio Blocks of the calculator (``app.launch()`` serves it)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    gr = _gradio()
    from hf_gpu_estimator.hardware import list_gpus
    from hf_gpu_estimator.sources.catalog import list_models

    d = DEFAULTS
    with gr.Blocks(title="hf-gpu-estimator", analytics_enabled=False) as app:
        gr.HTML(f"<style>{CSS}</style>", padding=False)  # in the page, whichever way it is launched
        gr.Markdown("# How much GPU does this LLM job need?\n"
                    "Memory per device, which GPUs fit, and the cheapest GPUs, before you launch. "
                    "Pure arithmetic from the model's config: nothing is downloaded but `config.json` and the "
                    "safetensors headers, and models in the bundled catalog work offline.")
        with gr.Tab("One job", elem_id="tab-job"), gr.Row():
            with gr.Column(scale=1, min_width=FORM_MIN_WIDTH):
                model = gr.Textbox(label="Model (Hub id or local folder)", value=d["model"], elem_id="model")
                pick = gr.Dropdown(label="or pick from the bundled catalog", choices=list(list_models()), value=None,
                                   elem_id="catalog")
                read_hub = gr.Checkbox(label="read the Hub even for catalog models", value=d["read_hub"],
                                       elem_id="read_hub")
                token = gr.Textbox(label="Hub token (optional: gated or private repos; used for this request, "
                                         "never stored)", type="password", value="", elem_id="token")
                task = gr.Radio(["inference", "training"], label="Task", value=d["task"], elem_id="task")
                method = gr.Radio(["full", "lora", "qlora"], label="Method (training)", value=d["method"],
                                  elem_id="method")
                with gr.Row():
                    batch = gr.Number(label="Batch size (per GPU)", value=d["batch_size"], precision=0, minimum=1,
                                      elem_id="batch_size")
                    seq = gr.Number(label="Sequence / prompt tokens", value=d["seq_len"], precision=0, minimum=1,
                                    elem_id="seq_len")
                    new = gr.Number(label="New tokens (inference)", value=d["new_tokens"], precision=0, minimum=0,
                                    elem_id="new_tokens")
                with gr.Row():
                    dtype = gr.Dropdown(list(DTYPES), label="Weights dtype", value=d["dtype"], elem_id="dtype")
                    precision = gr.Dropdown(list(PRECISIONS), label="Training precision", value=d["precision"],
                                            elem_id="precision")
                with gr.Row():
                    optimizer = gr.Dropdown(list(OPTIMIZERS), label="Optimizer", value=d["optimizer"],
                                            elem_id="optimizer")
                    quant = gr.Dropdown(list(QUANTIZATIONS), label="Quantization", value=d["quantization"],
                                        elem_id="quantization")
                checkpointing = gr.Checkbox(label="Gradient checkpointing", value=d["gradient_checkpointing"],
                                            elem_id="gradient_checkpointing")
                with gr.Row():
                    gpu = gr.Dropdown([g.name for g in list_gpus()], label="GPU", value=d["gpu"], elem_id="gpu")
                    num_gpus = gr.Number(label="GPUs", value=d["num_gpus"], precision=0, minimum=1,
                                         elem_id="num_gpus")
                with gr.Row():  # what the cheapest-GPU table below the chart assumes
                    rate = gr.Number(label="Requests/s (serving cost table)", value=d["request_rate"],
                                     elem_id="request_rate")
                    budget = gr.Number(label="Tokens to train on (training cost table)", value=d["token_budget"],
                                       elem_id="token_budget")
                go = gr.Button("Estimate", variant="primary", elem_id="estimate")
            with gr.Column(scale=2, min_width=RESULTS_MIN_WIDTH):
                summary = gr.Markdown(elem_id="summary")
                breakdown = gr.Markdown(elem_id="breakdown")  # stacked: side by side, both scroll below ~1400 px
                fits = gr.Markdown(elem_id="fits")
                plot = gr.Image(label="Memory per device vs GPU capacity", type="filepath", elem_id="plot",
                                height=480)
                plan = gr.Markdown(elem_id="plan")
                with gr.Accordion("Assumptions (what the estimate takes for granted, each with its source)",
                                  open=False, elem_id="assumptions_box"):
                    assumptions = gr.Markdown(elem_id="assumptions")
        inputs = [model, task, method, batch, seq, new, dtype, precision, optimizer, checkpointing, quant, gpu,
                  num_gpus, read_hub, token, rate, budget]
        failed = gr.State(False)  # the page shows an error: the next change of an input answers again
        outputs = [summary, breakdown, fits, plan, plot, assumptions, failed]

        def run(*values: Any) -> tuple[Any, ...]:
            r = calculate(*values)
            return r.summary, r.breakdown, r.fits, r.plan, r.plot_path, r.assumptions, r.estimate is None

        def again(was_error: bool, *values: Any) -> tuple[Any, ...]:
            """After an error, each edit answers again, so the error goes as soon as the input is fixed."""
            return run(*values) if was_error else tuple(gr.skip() for _ in outputs)

        pick.change(lambda m: m or gr.update(), inputs=[pick], outputs=[model])
        go.click(run, inputs=inputs, outputs=outputs)
        app.load(run, inputs=inputs, outputs=outputs)
        for field in inputs:  # typed fields when left or submitted, choices when changed
            events = (field.blur, field.submit) if isinstance(field, (gr.Textbox, gr.Number)) else (field.change,)
            for event in events:
                event(again, inputs=[failed, *inputs], outputs=outputs, show_progress="hidden")
        with gr.Tab("Fleet", elem_id="tab-fleet"):
            gr.Markdown("Several models and their traffic at once: each is planned on its cheapest GPU type "
                        "(serving at its request rate and TPOT target, or training on its token budget), then the "
                        "fleet's GPUs by type and its $/hour and $/month. Same file as `hfge plan --fleet FILE`.")
            with gr.Row():
                with gr.Column(scale=1):
                    fleet_text = gr.Code(value=FLEET_EXAMPLE, language="yaml", label="Fleet (YAML or JSON)",
                                         elem_id="fleet_file")
                    fleet_go = gr.Button("Plan the fleet", variant="primary", elem_id="plan_fleet")
                with gr.Column(scale=2):
                    fleet_out = gr.Markdown(elem_id="fleet_plan")
            fleet_go.click(plan_fleet_markdown, inputs=[fleet_text], outputs=[fleet_out])
        from hf_gpu_estimator.web_census import census_tab

        census_tab(gr)
    return app


def serve(*, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the calculator until interrupted (``hfge serve``)."""
    build_app().launch(server_name=host, server_port=port, show_error=True)
