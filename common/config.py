"""Stage configs: frozen dataclasses resolved as CLI > YAML/JSON file > defaults, unknown keys rejected.

config = resolve_config(TrainConfig, args.config, {"iters": args.iters})
write_config(config, out_dir / "train_config.json")
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path

import yaml


def resolve_config(cls, path: str | Path | None = None, overrides: dict | None = None):
    """Defaults, then the file's keys, then non-None overrides; unknown keys are an error naming the file."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ValueError(f"{path}: config file not found")
        text = path.read_text()
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must hold a mapping of keys to values")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        where = f"{path}" if path else "overrides"
        raise ValueError(f"{where}: unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _coerce(hints[k], v, k) for k, v in values.items()})


def _coerce(hint, value, key: str):
    """Turn file values into the field's type (paths, tuples); leave the rest to the dataclass."""
    options = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    if value is None:
        return None
    if Path in options and isinstance(value, str):
        return Path(value)
    origin = typing.get_origin(options[0])
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if options[0] is float and isinstance(value, int):
        return float(value)
    return value


def config_dict(config) -> dict:
    """JSON-ready dict of a config dataclass (paths as strings)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def write_config(config, path: str | Path) -> Path:
    """Write the resolved config as JSON next to a stage's outputs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config_dict(config), indent=2) + "\n")
    return path
