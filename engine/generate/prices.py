"""The price table for the money budget: `--price MODEL=PROMPT,COMPLETION` and/or a `--prices` file.

Prices are US dollars per million tokens, the unit providers publish. The file is TOML or JSON with
one entry per model, e.g. `[prices]` then `"gpt-4o" = {prompt = 2.5, completion = 10.0}` (a top-level
table without `[prices]` works too). A `--price` given on the command line wins over the file.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, InputError
from engine.generate.budget import Price


def _price(value: Any, where: str) -> Price:
    if isinstance(value, Mapping) and set(value) == {"prompt", "completion"}:
        p, c = value["prompt"], value["completion"]
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        p, c = value
    else:
        msg = f"{where}: expected {{prompt = X, completion = Y}} in US$ per million tokens, got {value!r}"
        raise ConfigError(msg)
    if not all(isinstance(x, int | float) and not isinstance(x, bool) and x >= 0 for x in (p, c)):
        msg = f"{where}: prices must be numbers >= 0 (US$ per million tokens), got {p!r}, {c!r}"
        raise ConfigError(msg)
    return Price(float(p), float(c))


def read_price_file(path: Path) -> dict[str, Price]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"--prices {path}: cannot read it ({exc.strerror or exc})"
        raise InputError(msg) from exc
    try:
        doc = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        msg = f"--prices {path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'} ({exc})"
        raise ConfigError(msg) from exc
    table = doc.get("prices", doc) if isinstance(doc, dict) else None
    if not isinstance(table, dict):
        msg = f"--prices {path}: expected a table of model = {{prompt, completion}}"
        raise ConfigError(msg)
    return {str(model): _price(v, f"--prices {path}: {model}") for model, v in table.items()}


def parse_prices(specs: Sequence[str] = (), file: str | Path | None = None) -> dict[str, Price]:
    """The price table from a file and `MODEL=PROMPT,COMPLETION` options (options win)."""
    prices = read_price_file(Path(file)) if file is not None else {}
    for spec in specs:
        model, eq, rest = spec.rpartition("=")
        parts = rest.split(",")
        try:
            nums = [float(x) for x in parts]
        except ValueError:
            nums = []
        if not eq or not model.strip() or len(nums) != 2:
            msg = f"--price {spec!r}: expected MODEL=PROMPT,COMPLETION in US$ per million tokens, e.g. --price gpt-4o=2.5,10"
            raise ConfigError(msg)
        prices[model.strip()] = _price(nums, f"--price {spec!r}")
    return prices
