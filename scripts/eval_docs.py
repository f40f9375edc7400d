"""Regenerate the worked examples in docs/evals.md and docs/fleet.md from the tool (``--check``: fail if stale).

Each example sits between ``<!-- BEGIN: COMMAND -->`` and ``<!-- END -->``; the command runs with
``HF_HUB_OFFLINE=1`` (bundled catalog) and its markdown output replaces the block.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "docs" / "evals.md", ROOT / "docs" / "fleet.md")
BLOCK = re.compile(r"(<!-- BEGIN: (.+?) -->\n)(.*?)(<!-- END -->)", re.DOTALL)


def run(command: str) -> str:
    args = shlex.split(command)
    assert args[0] == "hfge", command
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-m", "hf_gpu_estimator", *args[1:]], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True, timeout=300)
    return f"```console\n$ {command}\n```\n\n{out.stdout.strip()}\n\n"


def main(check: bool) -> int:
    stale = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        new = BLOCK.sub(lambda m: m.group(1) + run(m.group(2)) + m.group(4), text)
        if new != text:
            stale.append(path.name)
            if not check:
                path.write_text(new, encoding="utf-8")
    if check and stale:
        print("stale: " + ", ".join(stale) + " (run python scripts/eval_docs.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv))
