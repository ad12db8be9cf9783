"""Stage configs: frozen dataclasses resolved as CLI > YAML/JSON files (later over earlier) > defaults.

Unknown keys and values of the wrong type are errors naming the file and the key.

config = resolve_config(TrainConfig, ["finetune/default.yaml", args.config], {"iters": args.iters})
write_config(config, out_dir / "train_config.json")
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable
from pathlib import Path

import yaml


def resolve_config(cls, paths: str | Path | Iterable[str | Path | None] | None = None, overrides: dict | None = None):
    """Defaults, then each file's keys in order (None entries skipped), then non-None overrides."""
    if paths is None or isinstance(paths, (str, Path)):
        paths = [paths]
    known = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict = {}
    for path in (Path(p) for p in paths if p is not None):
        loaded = _read_mapping(path)
        unknown = sorted(set(loaded) - set(known))
        if unknown:
            raise ValueError(f"{path}: unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}")
        values.update({k: _coerce(hints[k], v, f"{path}: {k}") for k, v in loaded.items()})
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"overrides: unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}")
    values.update({k: _coerce(hints[k], v, k) for k, v in given.items()})
    return cls(**values)


def read_json(path: Path):
    """Parsed JSON of a file that may have been edited by hand; a syntax error names the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); fix it or re-run the stage that wrote it") from None


def _read_mapping(path: Path) -> dict:
    """A config file's top-level mapping; parse errors name the file."""
    if not path.exists():
        raise ValueError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of keys to values")
    return loaded


def _coerce(hint, value, where: str):
    """`value` as the field's type (str -> Path, list -> tuple, int -> float), or a ValueError naming `where`."""
    options = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    for option in options:
        ok, converted = _as_type(option, value)
        if ok:
            return converted
    expected = " or ".join(_type_name(o) for o in options)
    raise ValueError(f"{where}: expected {expected}, got {type(value).__name__} {value!r}")


def _as_type(option, value) -> tuple[bool, object]:
    """(True, converted) when `value` fits the type `option`, else (False, None)."""
    if option is type(None):
        return value is None, None
    if option is Path:
        return (True, Path(value)) if isinstance(value, (str, Path)) else (False, None)
    if option is bool:
        return isinstance(value, bool), value
    if option is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if option is float:
        if isinstance(value, str):  # PyYAML reads `3e-4` (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                return False, None
        fits = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return (True, float(value)) if fits else (False, None)
    if typing.get_origin(option) is tuple:
        if not isinstance(value, (list, tuple)):
            return False, None
        args = typing.get_args(option)
        item_types = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_types) != len(value):
            return False, None
        items = [_as_type(t, v) for t, v in zip(item_types, value, strict=True)]
        return (True, tuple(v for _, v in items)) if all(ok for ok, _ in items) else (False, None)
    if isinstance(option, type):
        return isinstance(value, option), value
    return True, value  # a hint this checker does not know: left to the dataclass


def _type_name(option) -> str:
    if option is type(None):
        return "null"
    if typing.get_origin(option) is tuple:
        args = typing.get_args(option)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return f"a list of {len(args)} ({', '.join(_type_name(a) for a in args)})"
    return getattr(option, "__name__", str(option))


def config_dict(config) -> dict:
    """JSON-ready dict of a config dataclass (paths as strings)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def write_config(config, path: str | Path) -> Path:
    """Write the resolved config as JSON next to a stage's outputs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config_dict(config), indent=2) + "\n")
    return path


def parse_pairs(text: str | None, what: str, form: str = 'word=value (e.g. "benign=0,malicious=1")') -> dict[str, str]:
    """Parse "a=1,b=2" into {"a": "1", "b": "2"} (flags such as --label-map, --train-caps, --repeat); a clear error
    names the bad pair and the expected `form`."""
    pairs: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.rpartition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{what}: {item.strip()!r} is not of the form {form}")
        pairs[key.strip()] = value.strip()
    return pairs
