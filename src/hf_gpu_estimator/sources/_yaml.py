"""Decoding untrusted YAML (fleet files, accelerate configs) safely, as :mod:`._json` does for JSON.

``yaml.safe_load`` executes nothing, but it expands aliases (a billion-laughs file of a few hundred
bytes becomes gigabytes), recurses once per nesting level, and converts integers of any length.
:func:`loads` refuses aliases and deep nesting as each node is composed, bounds the text, and turns
every failure into :class:`YAMLProblem` with a one-line reason, so each caller raises its own typed error.
"""

from __future__ import annotations

from typing import Any


class YAMLProblem(ValueError):
    """The text is not the YAML the caller accepts; ``str()`` is a one-line reason."""


def loads(text: str, *, max_chars: int, max_depth: int) -> Any:
    """``yaml.safe_load`` without aliases, at most ``max_depth`` levels deep and ``max_chars`` long.

    Raises:
        YAMLProblem: anything wrong with the text.
        ImportError: PyYAML is not installed.
    """
    import yaml

    if len(text) > max_chars:
        raise YAMLProblem(f"{len(text):,} characters, over the limit of {max_chars:,}")

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: object, index: object) -> object:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise YAMLProblem(f"aliases (*name) are not accepted; write the value out (line {mark.line + 1})")
            self.depth += 1
            if self.depth > max_depth:
                mark = self.peek_event().start_mark
                raise YAMLProblem(f"nested more than {max_depth} levels deep (line {mark.line + 1})")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise YAMLProblem(" ".join(line.strip() for line in str(e).splitlines()[:3])[:300]) from None
    except (ValueError, RecursionError) as e:  # YAMLProblem passes through; an int past the digit limit
        if isinstance(e, YAMLProblem):
            raise
        raise YAMLProblem(str(e).splitlines()[0][:200] if str(e) else type(e).__name__) from None
