"""Stage configs: build them from plain mappings (pipeline files, `--set k=v`) and fingerprint them."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

import xxhash

from engine.errors import ConfigError, did_you_mean

T = TypeVar("T")


def to_mapping(cfg: Any) -> dict[str, Any]:
    """The config as plain JSON-able values (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), sort_keys=True))


def fingerprint(cfg: Any, version: int = 0) -> str:
    """Hash of the config's canonical JSON and the stage version: stable across processes and machines."""
    blob = json.dumps({"config": to_mapping(cfg), "version": version, "type": type(cfg).__name__}, sort_keys=True)
    return xxhash.xxh64_hexdigest(blob.encode())


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Turn a TOML value or a `--set` string into the annotated type, or say what was expected."""
    origin = get_origin(annotation)
    if origin is Literal:
        choices = get_args(annotation)
        if value not in choices:
            msg = f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}{did_you_mean(str(value), map(str, choices))}"
            raise ConfigError(msg)
        return value
    if origin in (types.UnionType, typing.Union):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if value is None or value in ("", "none", "null"):
            return None
        return _coerce(name, value, args[0])
    if origin is tuple:
        (item,) = get_args(annotation)[:1]
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(_coerce(name, v.strip() if isinstance(v, str) else v, item) for v in items if v != "")
    try:
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if annotation in (int, float, str):
            return annotation(value)
    except (TypeError, ValueError) as exc:
        msg = f"{name}: expected {annotation.__name__}, got {value!r}"
        raise ConfigError(msg) from exc
    return value


def from_mapping(cls: type[T], mapping: Mapping[str, Any], where: str = "config") -> T:
    """Build a frozen config dataclass, rejecting unknown keys with the nearest known one."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in mapping.items():
        if key not in names:
            known = ", ".join(names) or "none"
            msg = f"{where}: unknown option {key!r}{did_you_mean(key, names)} (known: {known})"
            raise ConfigError(msg)
        kwargs[key] = _coerce(f"{where}.{key}", value, hints[key])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        msg = f"{where}: {exc}"
        raise ConfigError(msg) from exc


def parse_sets(
    pairs: list[str] | tuple[str, ...], *, option: str = "--set", example: str = "min_chars=10"
) -> dict[str, str]:
    """Parse `k=v` strings from the command line (`--set`, `--param`)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            msg = f"{option} {pair!r}: expected KEY=VALUE, e.g. {option} {example}"
            raise ConfigError(msg)
        out[key.strip()] = value.strip()
    return out
