"""``hfge plan``: what fits on a GPU, a serving engine's capacity, speed and cost; the cheapest GPUs;
the cost of an evaluation (``--eval``); a whole fleet (``--fleet FILE``)."""

from __future__ import annotations

import argparse
from typing import Any

from hf_gpu_estimator.cli._common import (
    add_command,
    add_device_args,
    add_format_arg,
    add_model_args,
    device_gpus,
    emit,
    free_memory_arg,
    int_at_least,
    positive_int,
    print_sections,
    read_spec,
    reading,
    token_count,
)
from hf_gpu_estimator.cli.workload_flags import add_workload_args, workload_kwargs

#: Workload flags that ``plan`` hands to the engine as its settings (llama.cpp ``-ctk`` / ``-ctv``).
_ENGINE_WORKLOAD_FLAGS = ("cache_type_k", "cache_type_v")
#: ``--engine`` choices (the planner's ENGINES, listed here so the parser needs no planner import).
ENGINES = ("vllm", "sglang", "llama.cpp", "transformers")

EPILOG = """examples:
  hfge plan meta-llama/Llama-3.1-8B --gpu H100-SXM-80GB --seq-len 1024 --new-tokens 256
  hfge plan meta-llama/Llama-3.1-70B --gpu A100-80GB-SXM --max-model-len 8192 --format json
  hfge plan meta-llama/Llama-3.1-70B --gpu H100-SXM-80GB --tp 4 --vllm-version 0.15
  hfge plan Qwen/Qwen2.5-7B --gpu L4 --engine sglang --mem-fraction-static 0.85 --max-model-len 8192
  hfge plan unsloth/Qwen3-8B-GGUF:Q4_K_M --gpu RTX-4090 --engine llama.cpp -c 32768 -np 4
  hfge plan meta-llama/Llama-3.1-8B --cheapest --gpu H100-SXM-80GB,L40S,A10G
  hfge plan meta-llama/Llama-3.1-8B --cheapest --request-rate 5 --input-tokens 1024 --output-tokens 256 --tpot-ms 50
  hfge plan Qwen/Qwen2.5-7B --cheapest --task training --method lora --token-budget 2e9 --deadline-hours 24
  hfge plan meta-llama/Llama-3.1-8B --eval mmlu,gsm8k,hellaswag --gpu H100-SXM-80GB --engine vllm
  hfge plan mistralai/Mistral-7B-v0.1 --eval open_llm_leaderboard --cheapest
  hfge plan --eval-list
  hfge plan --fleet examples/fleet.yaml --format markdown
"""


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "plan", run, epilog=EPILOG,
                    help="what fits on a GPU, vLLM serving capacity, speed, cost; or the cheapest GPU")
    add_model_args(p, optional=True)  # --fleet FILE and --eval-list need no MODEL
    add_workload_args(p)
    p.add_argument("--gpu", help="GPUs from the catalog (hfge gpus), comma-separated: a plan for each (default: "
                                 "every type of the catalog in one table); with --cheapest, the types to rank")
    p.add_argument("--cheapest", action="store_true", help="rank GPU type x count across the catalog by cost")
    p.add_argument("--verbose", action="store_true",
                   help="--cheapest and the catalog table: list every GPU type left out and why")
    add_device_args(p)
    engine = p.add_argument_group("serving engine")
    engine.add_argument("--engine", choices=ENGINES,
                        help="serving engine for the capacity answer (default: vllm; llama.cpp for a GGUF model); "
                             "with --eval: the engine lm-evaluation-harness drives (vllm or transformers)")
    engine.add_argument("--vllm-version", help="vLLM release X.Y whose sizing rule applies, 0.6 to 0.34 (default: "
                                               "0.19, the newest checked against logs; see docs/serving.md)")
    engine.add_argument("--gpu-memory-utilization", type=float,
                        help="vLLM's share of device memory (default 0.9; 0.92 from vLLM 0.20; 1.0 from 0.34)")
    engine.add_argument("--max-model-len", type=token_count,
                        help="context length the engine sizes sequences for (default: the model's maximum); 32k = 32768")
    engine.add_argument("--max-num-seqs", type=positive_int, help="vLLM's max_num_seqs (default: vLLM's, by GPU)")
    engine.add_argument("--max-num-batched-tokens", type=positive_int,
                        help="vLLM's token budget of one step (default: vLLM's, by GPU and version)")
    engine.add_argument("--mem-fraction-static", type=float,
                        help="SGLang's share of device memory for weights and KV pool (default: SGLang's, by GPU)")
    engine.add_argument("--sglang-version", help="SGLang release X.Y.Z whose --mem-fraction-static default applies, "
                                                 "0.4.1 to 0.5.10 (default 0.5.10; see docs/serving.md)")
    engine.add_argument("-c", "--ctx-size", type=token_count,
                        help="llama.cpp: total context shared by the slots (default: the model's maximum)")
    engine.add_argument("-np", "--parallel", type=positive_int, help="llama.cpp: parallel slots (default 1)")
    engine.add_argument("-fa", "--flash-attn", choices=("on", "off", "auto"),
                        help="llama.cpp: flash attention (default auto: on where the backend has it)")
    engine.add_argument("-ngl", "--n-gpu-layers", type=int_at_least(-1), dest="n_gpu_layers",
                        help="llama.cpp: layers offloaded to the GPU (-1 or more than the layers: all; "
                             "same as --gpu-layers)")
    engine.add_argument("--draft-model", help="speculative decoding: the draft model or EAGLE head (Hub id or path); "
                                              "vllm, sglang, llama.cpp (--model-draft)")
    engine.add_argument("--speculative-method", choices=("draft", "eagle", "eagle3", "mtp", "ngram"),
                        help="speculative decoding: what drafts (default: draft with --draft-model; mtp uses the "
                             "model's own MTP layers)")
    engine.add_argument("--num-speculative-tokens", type=positive_int,
                        help="speculative decoding: tokens proposed per step (default 1)")
    engine.add_argument("-ncmoe", "--n-cpu-moe", type=int_at_least(0), dest="n_cpu_moe",
                        help="llama.cpp: keep the routed experts of the first N layers in host memory")
    engine.add_argument("-ot", "--override-tensor", dest="override_tensors", action="append", metavar="PATTERN=BUFFER",
                        help="llama.cpp: tensors whose name matches PATTERN go to BUFFER (CPU: host memory; CUDA0 ...: "
                             "the GPU); comma-separated or repeated, the first match wins")
    engine.add_argument("-fit", "--fit", dest="fit_params", choices=("on", "off"),
                        help="llama.cpp: choose -c, -ngl and the experts kept in host memory as llama-fit-params "
                             "would, leaving --fit-target free (default off here)")
    engine.add_argument("-fitt", "--fit-target", dest="fit_target_mib", type=positive_int, metavar="MiB",
                        help="llama.cpp --fit: MiB left free on the device (default 1024)")
    engine.add_argument("-fitc", "--fit-ctx", dest="fit_ctx", type=token_count,
                        help="llama.cpp --fit: the smallest context it shrinks an unset -c to (default 4096)")
    engine.add_argument("--mmproj", action="store_true", default=None,
                        help="llama.cpp: load the vision-language model's projector and vision tower (--mmproj), "
                             "with its image encoder's warm-up compute buffer")
    p.add_argument("--request-rate", type=float, help="requests per second (--cheapest serving; default 1)")
    p.add_argument("--input-tokens", type=positive_int,
                   help="mean prompt tokens per request (--cheapest serving; default 1024)")
    p.add_argument("--output-tokens", type=positive_int,
                   help="mean generated tokens per request (--cheapest serving; default 256)")
    p.add_argument("--tpot-ms", type=float, help="p50 time-per-output-token target in ms (--cheapest)")
    p.add_argument("--ttft-ms", type=float, help="p50 time-to-first-token target in ms (--cheapest)")
    p.add_argument("--token-budget", type=float, help="training tokens (--cheapest with --task training)")
    p.add_argument("--deadline-hours", type=float, help="training deadline (--cheapest with --task training)")
    p.add_argument("--eval", help="evaluation suites or tasks, comma-separated (mmlu,gsm8k,hellaswag; NAME:K sets "
                                  "the few-shot count; 'all'); see --eval-list")
    p.add_argument("--eval-list", action="store_true", help="list the evaluation suites and tasks, then exit")
    p.add_argument("--fleet", help="a YAML or JSON file of models and their traffic (no MODEL needed)")
    add_format_arg(p)


def _gpu_names(text: str | None) -> list[str] | None:
    """``--gpu A,B`` as a list (``None``: the whole catalog)."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        from hf_gpu_estimator.errors import InvalidArgumentError

        raise InvalidArgumentError("gpu", text, "catalog names, comma-separated (hfge gpus)")
    return names


def engine_settings(args: argparse.Namespace, engine: str) -> dict[str, Any]:
    """The engine flags given on the command line, as the planner's ``engine_settings``; a flag of
    another engine is refused (it would be silently ignored otherwise)."""
    from hf_gpu_estimator.errors import ConflictingOptionsError

    owners = {"vllm_version": "vllm", "max_num_seqs": "vllm", "max_num_batched_tokens": "vllm",
              "mem_fraction_static": "sglang", "sglang_version": "sglang", "ctx_size": "llama.cpp",
              "parallel": "llama.cpp",
              "flash_attn": "llama.cpp", "mmproj": "llama.cpp", "n_cpu_moe": "llama.cpp",
              "cache_type_k": "llama.cpp", "cache_type_v": "llama.cpp", "override_tensors": "llama.cpp",
              "fit_params": "llama.cpp", "fit_target_mib": "llama.cpp", "fit_ctx": "llama.cpp"}
    for name, owner in owners.items():
        if getattr(args, name) is not None and owner != engine:
            flag = "--" + name.replace("_", "-")
            raise ConflictingOptionsError(name, getattr(args, name), f"is a {owner} setting, not {engine}'s",
                                          fix=f"pass --engine {owner}, or drop {flag}")
    settings = {name: getattr(args, name) for name, owner in owners.items() if owner == engine}
    if engine == "llama.cpp":
        if settings.get("override_tensors") is not None:
            settings["override_tensors"] = tuple(settings["override_tensors"])
        if settings.get("fit_params") is not None:
            settings["fit_params"] = settings["fit_params"] == "on"
        layers = args.n_gpu_layers if args.n_gpu_layers is not None else args.gpu_layers
        settings["n_gpu_layers"] = None if layers is None or layers < 0 else layers
        if args.ctx_size is None and args.max_model_len is not None:  # each slot gets -c / -np tokens
            settings["ctx_size"] = args.max_model_len * (args.parallel or 1)
    elif args.n_gpu_layers is not None:
        raise ConflictingOptionsError("n_gpu_layers", args.n_gpu_layers, f"is a llama.cpp setting, not {engine}'s",
                                      fix="pass --engine llama.cpp, or drop --n-gpu-layers")
    return {k: v for k, v in settings.items() if v is not None}


def speculative_setting(args: argparse.Namespace, engine: str) -> Any:
    """The :class:`~hf_gpu_estimator.planner.engines.speculative.Speculative` the flags ask for, or ``None``;
    the draft checkpoint is read like the model (Hub, catalog, path)."""
    from hf_gpu_estimator.errors import ConflictingOptionsError
    from hf_gpu_estimator.planner.engines.speculative import Speculative
    from hf_gpu_estimator.sources import inspect_model

    given = [n for n in ("draft_model", "speculative_method", "num_speculative_tokens") if getattr(args, n) is not None]
    if not given:
        return None
    if engine not in ("vllm", "sglang", "llama.cpp"):
        raise ConflictingOptionsError(given[0], getattr(args, given[0]), f"is a speculative-decoding setting, which "
                                      f"{engine} has no model of", fix="pass --engine vllm, sglang or llama.cpp")
    method = args.speculative_method or ("draft" if args.draft_model else None)
    if method is None:
        raise ConflictingOptionsError("num_speculative_tokens", args.num_speculative_tokens, "needs a drafter",
                                      fix="add --draft-model ID or --speculative-method mtp|ngram")
    draft = None
    if args.draft_model is not None:
        with reading(args.draft_model):
            draft = inspect_model(args.draft_model, revision=None, token=args.token)
    return Speculative(method=method, num_speculative_tokens=args.num_speculative_tokens or 1, draft=draft)


def run(args: argparse.Namespace) -> int:
    from hf_gpu_estimator import planner
    from hf_gpu_estimator.errors import ConflictingOptionsError, InvalidArgumentError
    from hf_gpu_estimator.estimator import fit_context
    from hf_gpu_estimator.hardware import get_gpu
    from hf_gpu_estimator.report import eval_list_sections, plan_sections, serving_sections, training_sections
    from hf_gpu_estimator.workload import workload_from_kwargs

    if args.eval_list:
        print_sections(eval_list_sections(planner.eval_suites(), planner.eval_tasks()), "text" if args.format == "json" else args.format)
        return 0
    if args.fleet:
        return _run_fleet(args)
    if not args.model:
        raise ConflictingOptionsError("model", None, "is required",
                                      fix="hfge plan MODEL --gpu NAME (or --fleet FILE, or --eval-list)")
    if args.eval:
        return _run_eval(args)
    spec = read_spec(args)
    # -ctk/-ctv are parsed with the workload flags (estimate takes them there) and sized as engine settings here
    asked = {k: v for k, v in workload_kwargs(args).items() if k not in _ENGINE_WORKLOAD_FLAGS}
    kwargs, _notes = fit_context(spec, asked)
    if args.n_gpu_layers is not None and args.n_gpu_layers >= 0:
        kwargs["gpu_layers"] = args.n_gpu_layers
    work = workload_from_kwargs(kwargs)
    utilization = args.gpu_memory_utilization
    if args.cheapest:
        gpus = _gpu_names(args.gpu)
        if work.is_training:
            if args.token_budget is None:
                raise InvalidArgumentError("token_budget", None, "a token count (--token-budget 2e9)")
            result: Any = planner.cheapest_training(spec, work, token_budget=args.token_budget,
                                                    deadline_hours=args.deadline_hours, gpus=gpus)
            sections = training_sections
        else:
            traffic = {k: v for k, v in (("request_rate_per_s", args.request_rate), ("input_tokens", args.input_tokens),
                                         ("output_tokens", args.output_tokens)) if v is not None}
            if utilization is not None:
                traffic["gpu_memory_utilization"] = utilization
            engine = args.engine or planner.default_engine(spec, work)
            settings = engine_settings(args, engine)
            result = planner.cheapest_serving(spec, work, tpot_ms=args.tpot_ms, ttft_ms=args.ttft_ms, gpus=gpus,
                                              engine=engine, max_model_len=args.max_model_len,
                                              vllm_version=settings.pop("vllm_version", None),
                                              engine_settings=settings, **traffic)
            sections = serving_sections
    else:
        engine = args.engine or planner.default_engine(spec, work)
        options: dict[str, Any] = {}
        if utilization is not None:
            if engine != "vllm":
                raise ConflictingOptionsError("gpu_memory_utilization", utilization, f"is a vllm setting, not {engine}'s",
                                              fix="pass --engine vllm (SGLang: --mem-fraction-static)")
            options["gpu_memory_utilization"] = utilization
        settings = engine_settings(args, engine)
        speculative = speculative_setting(args, engine)
        if speculative is not None:
            settings["speculative"] = speculative
        version = settings.pop("vllm_version", None)
        if args.gpu is None and args.device_memory_gib is None:  # every GPU type of the catalog
            from hf_gpu_estimator.report import catalog_sections

            overview = planner.plan_catalog(spec, work, engine=args.engine, max_model_len=args.max_model_len,
                                            vllm_version=version, engine_settings=settings,
                                            free_memory_bytes=free_memory_arg(args), **options)
            if args.format == "json":
                emit(overview.to_dict(), "json")
            else:
                print_sections(catalog_sections(overview, verbose=args.verbose), args.format)
            return 0
        gpus = device_gpus(argparse.Namespace(gpu=_gpu_names(args.gpu) if args.gpu else None,
                                              device_memory_gib=args.device_memory_gib))
        plans = [planner.plan(spec, work, g, max_model_len=args.max_model_len, engine=args.engine,
                              vllm_version=version, engine_settings=settings,
                              free_memory_bytes=free_memory_arg(args), **options) for g in gpus]
        if args.format == "json":
            emit(plans[0].to_dict() if len(plans) == 1 else {"plans": [p.to_dict() for p in plans]}, "json")
        else:
            print_sections([s for p in plans for s in plan_sections(p)], args.format)
        return 0
    if args.format == "json":
        emit(result.to_dict(), "json")
    else:
        print_sections(sections(result, verbose=args.verbose), args.format)
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    """``hfge plan MODEL --eval ...``: the evaluation on ``--gpu``, or every priced GPU type ranked."""
    from hf_gpu_estimator.errors import ConflictingOptionsError
    from hf_gpu_estimator.planner import evals
    from hf_gpu_estimator.report import eval_ranking_section, eval_sections
    from hf_gpu_estimator.workload import workload_from_kwargs

    engine = args.engine or "vllm"
    if engine not in evals.EVAL_ENGINES:
        raise ConflictingOptionsError("engine", engine, "cannot size an evaluation",
                                      fix="--engine " + " or --engine ".join(evals.EVAL_ENGINES) + " with --eval")
    unused = [n for n in ("vllm_version", "max_num_seqs", "max_num_batched_tokens", "mem_fraction_static",
                          "sglang_version", "ctx_size", "parallel", "n_gpu_layers", "flash_attn", "max_model_len",
                          "draft_model", "speculative_method", "num_speculative_tokens", "mmproj", "n_cpu_moe",
                          "cache_type_k", "cache_type_v", "override_tensors", "fit_params", "fit_target_mib", "fit_ctx")
              if getattr(args, n) is not None]
    if args.gpu_memory_utilization is not None and (engine != "vllm" or args.cheapest):
        unused.insert(0, "gpu_memory_utilization")
    if unused:  # the evaluation planner takes vLLM's --gpu-memory-utilization only; refused, not ignored
        flag = "--" + unused[0].replace("_", "-")
        raise ConflictingOptionsError(unused[0], getattr(args, unused[0]), "does not apply to --eval",
                                      fix=f"drop {flag} (--eval sizes vLLM at its defaults, or transformers)")
    runs = evals.resolve_evals(args.eval)  # bad names fail before the model is read
    spec = read_spec(args)
    work = workload_from_kwargs(workload_kwargs(args))
    if args.cheapest:
        ranked = evals.cheapest_eval(spec, work, [f"{r.task.name}:{r.num_fewshot}" for r in runs], engine=engine,
                                     gpus=_gpu_names(args.gpu))
        if args.format == "json":
            emit(ranked.to_dict(), "json")
        else:
            print_sections([*eval_sections(ranked.best), eval_ranking_section(ranked)], args.format)
        return 0
    if args.gpu is None:
        raise ConflictingOptionsError("gpu", None, "is required", fix="pass --gpu NAME, or --cheapest to rank the catalog")
    results = [evals.plan_eval(spec, work, name, runs, engine=engine,
                               gpu_memory_utilization=args.gpu_memory_utilization) for name in _gpu_names(args.gpu) or ()]
    if args.format == "json":
        emit(results[0].to_dict() if len(results) == 1 else {"plans": [r.to_dict() for r in results]}, "json")
    else:
        print_sections([s for r in results for s in eval_sections(r)], args.format)
    return 0


def _run_fleet(args: argparse.Namespace) -> int:
    """``hfge plan --fleet FILE``: every model's cheapest plan and the fleet's GPUs and cost."""
    from hf_gpu_estimator.errors import ConflictingOptionsError
    from hf_gpu_estimator.planner import plan_fleet
    from hf_gpu_estimator.report import fleet_sections
    from hf_gpu_estimator.sources.fleet import validate_fleet

    if args.eval or args.model:
        what = "--eval" if args.eval else "MODEL"
        raise ConflictingOptionsError("fleet", args.fleet, f"cannot be combined with {what}",
                                      fix="the fleet file names its models; plan a single model or an evaluation "
                                          "in its own command")
    result = plan_fleet(validate_fleet(args.fleet))
    if args.format == "json":
        emit(result.to_dict(), "json")
    else:
        print_sections(fleet_sections(result), args.format)
    return 0
