"""Build the bundled model catalog from the per-model files in ``scripts/catalog_configs/``.

Each input file holds one model's published ``config.json`` (verbatim, with the URL it came
from) and, where one is known, the parameter count its publisher states. This script derives
the exact parameter counts from the config with :mod:`hf_gpu_estimator.architectures`,
checks them against the published numbers, and writes
``src/hf_gpu_estimator/sources/catalog/models.json``.

A derived input (a fine-tune, mirror or quantization of another entry) carries no config: it names its base
(``derived_from``) and the keys its own config.json changes (``config_overrides``), and says whether its
architecture facts were read from its own config.json (``facts: "own"``, with ``config_facts``: each fact's
value, ``config_facts_source``: that config.json's URL, ``config_facts_read_in``: where the values were read)
or are the base's, unverified (``"inherited"``). ``"partial"`` marks a config put together from sources that
each quote part of it. The build refuses an entry whose resolved config contradicts its ``config_facts``.

The output is a pure function of the input files and the package's architecture code (sorted
keys, no timestamps), so re-running the script reproduces it byte for byte; the test suite
checks that.

Usage::

    python scripts/build_catalog.py            # rebuild models.json, report mismatches
    python scripts/build_catalog.py --check    # exit 1 if models.json is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "scripts" / "catalog_configs"
OUTPUT = ROOT / "src" / "hf_gpu_estimator" / "sources" / "catalog" / "models.json"

SCHEMA_VERSION = 1
#: A published count that differs from the derived one by more than this fraction is an error.
TOLERANCE = 0.005

_REQUIRED = ("id", "source", "gated", "published_parameters", "published_parameters_source")
#: A derived entry (a fine-tune, mirror or quantization of another entry) names its base instead of
#: carrying a config: the base's config with ``config_overrides`` applied (a ``null`` value is written
#: as JSON null, as config.json states ``"sliding_window": null``). ``facts`` says whether its
#: architecture facts were checked against its own config.json ("own") or are the base's ("inherited"); an
#: entry whose config was put together from sources that each quote part of it says "partial".
_DERIVED = ("derived_from", "config_overrides", "notes", "facts")
_FACTS = ("own", "inherited", "partial")
#: The architecture facts that differ between instruct and base releases (issue 19 item 6): a derived
#: entry whose config_facts name one of them with another value than its resolved config fails the build.
KEY_FACTS = ("rope_theta", "sliding_window", "max_position_embeddings", "vocab_size", "tie_word_embeddings")


@dataclass(frozen=True)
class Mismatch:
    """A derived parameter count that disagrees with the published one."""

    model_id: str
    derived: int
    published: int
    exact: bool

    @property
    def relative(self) -> float:
        return (self.derived - self.published) / self.published

    @property
    def is_error(self) -> bool:
        return abs(self.relative) > TOLERANCE

    def __str__(self) -> str:
        kind = "exact" if self.exact else "rounded"
        return (
            f"{self.model_id}: derived {self.derived:,} vs published {self.published:,} ({kind}), "
            f"{self.relative * 100:+.3f} %"
        )


def stored_dtype(config: Mapping[str, Any]) -> tuple[str, str]:
    """The dtype the checkpoint's floating weights are stored in, and where that came from.

    ``torch_dtype`` (``dtype`` in configs written by transformers >= 4.56) names it. Configs
    that predate the field (GPT-2, BERT, T5) were saved by code that wrote float32 tensors.
    """
    for key in ("torch_dtype", "dtype"):
        value = config.get(key)
        if isinstance(value, str) and value not in ("auto", ""):
            return value.removeprefix("torch."), "config"
    text_config = config.get("text_config")
    if isinstance(text_config, Mapping):
        return stored_dtype(text_config)
    return "float32", "default"


def _aliases(entry: Mapping[str, Any]) -> list[str]:
    model_id: str = entry["id"]
    names = {model_id.lower(), model_id.split("/", 1)[-1].lower()}
    names.update(alias.lower() for alias in entry.get("aliases", ()))
    # Meta's original releases (params.json + consolidated.*.pth) are the same weights as the -hf twin.
    names.update(repo.lower() for repo in entry.get("original_repos", ()))
    names.discard(model_id.lower())  # the id itself is matched directly
    return sorted(names)


def _load_inputs(config_dir: Path) -> list[dict[str, Any]]:
    entries = []
    for path in sorted(config_dir.glob("*.json")):
        entry = json.loads(path.read_text(encoding="utf-8"))
        missing = [key for key in _REQUIRED if key not in entry]
        if missing:
            raise ValueError(f"{path.name}: missing {', '.join(missing)}")
        expected_name = entry["id"].replace("/", "__") + ".json"
        if path.name != expected_name:
            raise ValueError(f"{path.name}: file name should be {expected_name} for id {entry['id']!r}")
        if "derived_from" in entry:
            absent = [key for key in _DERIVED if key not in entry]
            if absent or "config" in entry:
                raise ValueError(f"{path.name}: a derived entry has {', '.join(_DERIVED)} and no config")
            if entry["facts"] not in _FACTS:
                raise ValueError(f"{path.name}: facts is {entry['facts']!r}; use one of {', '.join(_FACTS)}")
            if entry["facts"] == "own" and not entry.get("config_facts"):
                raise ValueError(f"{path.name}: facts 'own' needs config_facts read from its own config.json")
        elif "config" not in entry:
            raise ValueError(f"{path.name}: missing config (or derived_from)")
        elif entry.get("facts", "own") not in ("own", "partial"):
            raise ValueError(f"{path.name}: facts is {entry['facts']!r}; an entry with its own config says own or partial")
        if entry.get("config_facts") and not entry.get("config_facts_source"):
            raise ValueError(f"{path.name}: config_facts need config_facts_source (the config.json URL)")
        entries.append(entry)
    if not entries:
        raise ValueError(f"no catalog inputs in {config_dir}")
    by_id = {e["id"]: e for e in entries}
    for entry in entries:
        _resolve_config(entry, by_id, ())
    for entry in entries:
        differing = fact_differences(entry)
        if differing:
            raise ValueError(f"{entry['id']}: the config differs from the facts its own config.json states "
                             f"({entry['config_facts_source']}): {'; '.join(differing)}")
    return entries


def fact_differences(entry: Mapping[str, Any]) -> list[str]:
    """Each recorded config.json fact (``config_facts``) that the entry's resolved config contradicts."""
    config = entry["config"]
    out = []
    for key, value in (entry.get("config_facts") or {}).items():
        if key not in config:
            out.append(f"{key}: config.json has {value!r}, the catalog config has no such key")
        elif config[key] != value or isinstance(config[key], bool) != isinstance(value, bool):
            out.append(f"{key}: config.json has {value!r}, the catalog config {config[key]!r}")
    return out


def _resolve_config(entry: dict[str, Any], by_id: Mapping[str, dict[str, Any]], seen: tuple[str, ...]) -> dict:
    """Fill ``entry["config"]`` of a derived entry from its base (recursively)."""
    if "config" in entry:
        return entry["config"]
    base_id = entry["derived_from"]
    if base_id not in by_id or base_id in seen:
        raise ValueError(f"{entry['id']}: derived_from {base_id!r} is not a catalog entry (or is circular)")
    config = json.loads(json.dumps(_resolve_config(by_id[base_id], by_id, (*seen, entry["id"]))))
    config.update(entry["config_overrides"])
    entry["config"] = config
    return config


def _entry(raw: Mapping[str, Any]) -> dict[str, Any]:
    from hf_gpu_estimator.architectures import architecture_from_config, parameter_counts

    config = raw["config"]
    architecture_from_config(config)  # raises for an unsupported or malformed config
    counts = parameter_counts(config)
    dtype, dtype_source = stored_dtype(config)
    if raw.get("stored_dtype") and dtype_source == "default":
        # config.json names no dtype but the published files' headers do (the entry's notes say so).
        dtype, dtype_source = raw["stored_dtype"], "header"
    out: dict[str, Any] = {
        "id": raw["id"],
        "aliases": _aliases(raw),
        "source": raw["source"],
        "confirmed_by": list(raw.get("confirmed_by", ())),
        "gated": bool(raw["gated"]),
        "model_type": config.get("model_type"),
        "config": config,
        "stored_dtype": dtype,
        "stored_dtype_source": dtype_source,
        "parameters": {
            "total": counts.total,
            "by_role": {role: int(n) for role, n in sorted(counts.by_role.items())},
            "active": counts.active,
        },
        "published_parameters": raw["published_parameters"],
        "published_parameters_exact": raw.get("published_parameters_exact"),
        "published_parameters_source": raw["published_parameters_source"],
        "published_parameters_verified": raw.get("published_parameters_verified"),
    }
    if raw.get("published_parameters_verified_by"):
        out["published_parameters_verified_by"] = raw["published_parameters_verified_by"]
    if raw.get("known_difference"):
        out["known_difference"] = raw["known_difference"]
    if raw.get("original_repos"):
        out["original_repos"] = list(raw["original_repos"])
        out["original_repos_source"] = raw["original_repos_source"]
    if raw.get("notes"):
        out["notes"] = raw["notes"]
    if raw.get("derived_from"):
        out["derived_from"] = raw["derived_from"]
    out["facts"] = raw.get("facts", "own")
    if raw.get("config_facts"):
        out["config_facts"] = dict(raw["config_facts"])
        out["config_facts_source"] = raw["config_facts_source"]
        if raw.get("config_facts_read_in"):
            out["config_facts_read_in"] = list(raw["config_facts_read_in"])
    if raw.get("published_checkpoint_bytes"):
        out["published_checkpoint_bytes"] = raw["published_checkpoint_bytes"]
        out["published_checkpoint_bytes_source"] = raw["published_checkpoint_bytes_source"]
    return out


#: Inputs kept in scripts/catalog_configs/ but left out of models.json because no dimension model
#: counts their model_type yet (filled by build_entries; the build reports them).
SKIPPED: dict[str, str] = {}


def _entry_or_none(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    from hf_gpu_estimator.errors import UnsupportedArchitectureError

    if raw.get("exclude"):
        SKIPPED[raw["id"]] = str(raw["exclude"])
        return None
    try:
        return _entry(raw)
    except UnsupportedArchitectureError as e:
        SKIPPED[raw["id"]] = str(raw["config"].get("model_type"))
        del e
        return None


def cross_check(entries: Iterable[Mapping[str, Any]]) -> list[Mismatch]:
    """Every entry whose derived total differs from its published count (after known differences)."""
    found = []
    for entry in entries:
        published = entry.get("published_parameters")
        if published is None:
            continue
        derived = entry["parameters"]["total"] + int((entry.get("known_difference") or {}).get("parameters", 0))
        if derived != published:
            found.append(
                Mismatch(entry["id"], derived, int(published), bool(entry.get("published_parameters_exact")))
            )
    return found


def build_entries(config_dir: Path = CONFIG_DIR) -> list[dict[str, Any]]:
    """The catalog entries, sorted by id, with aliases checked for collisions."""
    entries = sorted((e for e in map(_entry_or_none, _load_inputs(config_dir)) if e is not None),
                     key=lambda e: e["id"].lower())
    owner: dict[str, str] = {}
    # Originals first: a mirror or fine-tune (derived_from) never takes the short name of the model it copies.
    for entry in sorted(entries, key=lambda e: ("derived_from" in e, e["id"].lower())):
        short = entry["id"].split("/", 1)[-1].lower()
        for key in (entry["id"].lower(), *entry["aliases"]):
            if key in owner and owner[key] != entry["id"]:
                if key == short:  # the automatic short name: first come, first served
                    entry["aliases"].remove(key)
                    continue
                raise ValueError(f"alias {key!r} names both {owner[key]} and {entry['id']}")
            owner[key] = entry["id"]
    return entries


def render(entries: list[dict[str, Any]]) -> str:
    """The models.json text: deterministic (sorted keys, fixed indent, trailing newline)."""
    document = {
        "schema_version": SCHEMA_VERSION,
        "generated_by": "scripts/build_catalog.py",
        "tolerance": TOLERANCE,
        "models": entries,
    }
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def build_catalog(config_dir: Path = CONFIG_DIR) -> str:
    """The full models.json text built from ``config_dir``."""
    return render(build_entries(config_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if models.json is out of date")
    parser.add_argument("--force", action="store_true", help="write even when a published count disagrees")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    entries = build_entries()
    text = render(entries)
    mismatches = cross_check(entries)
    errors = [m for m in mismatches if m.is_error]
    for m in mismatches:
        tag = "ERROR" if m.is_error else "note "
        print(f"{tag} parameter count mismatch: {m}", file=sys.stderr)

    if SKIPPED:
        print(f"{len(SKIPPED)} inputs left out (model_type not countable yet): "
              + ", ".join(f"{k} ({v})" for k, v in sorted(SKIPPED.items())), file=sys.stderr)
    families = Counter(str(e["model_type"]) for e in entries)
    print(f"{len(entries)} models: " + ", ".join(f"{k} {v}" for k, v in sorted(families.items())), file=sys.stderr)

    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python scripts/build_catalog.py", file=sys.stderr)
            return 1
        return 1 if errors else 0
    if errors and not args.force:
        print(
            f"!!! {len(errors)} published parameter count(s) differ by more than {TOLERANCE:.1%}; "
            "fix the config files (or pass --force); models.json not written",
            file=sys.stderr,
        )
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
