"""The CLI package's shape (one module per command, the root only dispatches) and the module graph."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from hf_gpu_estimator import cli
from hf_gpu_estimator.cli.workload_flags import WORKLOAD_FLAGS

PACKAGE = Path(cli.__file__).resolve().parents[1]
COMMAND_NAMES = ("estimate", "inspect", "plan", "gpus", "measure", "preflight", "serve", "census")


def test_every_command_is_a_module_that_registers_itself() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert tuple(sub.choices) == COMMAND_NAMES
    for command in cli.COMMANDS:
        assert callable(command.register), command.__name__
    for name, p in sub.choices.items():
        assert callable(p.get_default("func")), name


def test_root_has_no_branch_over_command_names() -> None:
    source = (PACKAGE / "cli" / "__init__.py").read_text()
    for name in COMMAND_NAMES:
        assert f'== "{name}"' not in source


def test_workload_flags_are_make_workload_keywords() -> None:
    import inspect

    from hf_gpu_estimator.workload import make_workload

    accepted = inspect.signature(make_workload).parameters
    assert [f.dest for f in WORKLOAD_FLAGS if f.dest not in accepted] == []


@pytest.mark.parametrize("command", ["estimate", "plan", "measure", "preflight"])
def test_workload_commands_take_every_workload_flag(command: str) -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    flags = {s for a in sub._actions for s in a.option_strings}
    assert {f.name for f in WORKLOAD_FLAGS} <= flags


def test_entry_point_and_python_m() -> None:
    out = subprocess.run([sys.executable, "-m", "hf_gpu_estimator.cli", "--version"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0 and out.stdout.startswith("hf-gpu-estimator "), out.stderr


def _imports(module: str) -> set[str]:
    """Every hf_gpu_estimator module ``module`` imports, at the top or inside functions (not TYPE_CHECKING)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    type_checking = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                     and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
                     for n in ast.walk(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hf_gpu_estimator"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("hf_gpu_estimator"))
    return out


LAYERED = ("hf_gpu_estimator.estimator", "hf_gpu_estimator.planner", "hf_gpu_estimator.suggest",
           "hf_gpu_estimator.report", "hf_gpu_estimator.plots")


def _top(name: str) -> str | None:
    return next((m for m in LAYERED if name == m or name.startswith(m + ".")), None)


def test_no_import_circle_between_estimator_planner_suggest_report_plots() -> None:
    graph: dict[str, set[str]] = {}
    for module in LAYERED:
        names = [module]
        path = PACKAGE / module.split(".")[-1]
        if path.is_dir():
            names += [f"{module}.{p.relative_to(path).with_suffix('').as_posix().replace('/', '.')}"
                      for p in path.rglob("*.py") if p.name != "__init__.py"]
        graph[module] = {t for n in names for imp in _imports(n) if (t := _top(imp)) and t != module}
    seen: dict[str, int] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        if seen.get(node) == 1:
            raise AssertionError(" -> ".join((*path, node)))
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for nxt in graph[node]:
            visit(nxt, (*path, node))
        seen[node] = 2

    for module in LAYERED:
        visit(module, ())


OURS = ("hf_gpu_estimator.estimator", "hf_gpu_estimator.suggest", "hf_gpu_estimator.report", "hf_gpu_estimator.plots",
        "hf_gpu_estimator.web", *(m.__name__ for m in cli.COMMANDS))


@pytest.mark.parametrize("module", OURS)
def test_no_private_names_imported_from_other_modules(module: str) -> None:
    origin = importlib.util.find_spec(module).origin
    tree = ast.parse(Path(origin).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hf_gpu_estimator"):
            private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
            assert not private, f"{module} imports {private} from {node.module}"


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for name in COMMAND_NAMES:
        assert name in out.split("positional arguments")[1].split("options")[0]
    assert "hfge measure" in out


BLOCK = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("accelerate", "torch", "transformers", "peft", "lightning", "gradio", "matplotlib"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from hf_gpu_estimator.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("argv", "extra"), [
    (["preflight", "--accelerate-config", "x.yaml", "gpt2", "--gpu", "RTX-4090"], "accelerate"),
    (["estimate", "gpt2", "--exact"], "torch"),
    (["measure", "gpt2", "--device", "cpu"], "torch"),
    (["serve"], "web"),
    (["estimate", "gpt2", "--plot", "x.png"], "plot"),
], ids=lambda v: v if isinstance(v, str) else v[0])
def test_missing_optional_dependency_is_one_line_naming_the_extra(argv, extra, tmp_path):
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("HFGE_DEBUG", None)
    out = subprocess.run([sys.executable, "-c", BLOCK, *argv], capture_output=True, text=True, check=False,
                         cwd=tmp_path, env=env)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    assert f"pip install 'hf-gpu-estimator[{extra}]'" in lines[0]


def test_docs_cli_help_is_current(monkeypatch):
    spec = importlib.util.spec_from_file_location("render_cli_help", PACKAGE.parents[1] / "scripts" / "render_cli_help.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("COLUMNS", module.WIDTH)
    doc = module.DOC.read_text(encoding="utf-8")
    block = doc[doc.index(module.BEGIN) + len(module.BEGIN):doc.index(module.END)]
    assert block.strip() == module.render().strip(), "docs/cli.md is stale: run python scripts/render_cli_help.py"
    assert "### `hfge measure --help`" in block


def test_resource_warnings_of_libraries_are_not_shown(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Unclosed sockets of the servers the CLI runs (Gradio) are not the user's business."""
    import argparse
    import warnings

    def noisy(args: object) -> int:
        warnings.warn("unclosed <socket.socket fd=12>", ResourceWarning, stacklevel=1)
        return 0

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=noisy, command="serve")
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main([]) == 0
    assert "ResourceWarning" not in capsys.readouterr().err
