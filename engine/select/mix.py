"""Mix tables: shares per domain, from a TOML `[mix]` table or a CSV with `domain,share` columns."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

from engine.errors import ConfigError, InputError
from engine.select.queries import QUERIES_DIR

DEFAULT_MIX = QUERIES_DIR / "mix_default.toml"


def _check(path: Path, shares: dict[str, float]) -> dict[str, float]:
    if not shares:
        msg = f"{path}: the mix table is empty; give at least one domain with a share > 0"
        raise ConfigError(msg)
    for domain, share in shares.items():
        if not isinstance(share, int | float) or isinstance(share, bool) or share < 0:
            msg = f"{path}: {domain}: expected a share >= 0, got {share!r}"
            raise ConfigError(msg)
    if sum(shares.values()) <= 0:
        msg = f"{path}: the shares sum to 0; give at least one domain a share > 0"
        raise ConfigError(msg)
    return {d: float(s) for d, s in shares.items()}


def read_mix(path: str | Path | None = None) -> dict[str, float]:
    """Shares by domain (not yet normalised); `None` gives the default recipe."""
    path = Path(path) if path is not None else DEFAULT_MIX
    if not path.exists():
        msg = f"{path}: no such mix file; give a TOML [mix] table or a CSV with domain,share columns"
        raise InputError(msg)
    if path.suffix == ".csv":
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"domain", "share"} <= set(reader.fieldnames):
                msg = f"{path}:1: expected a header with domain,share, got {reader.fieldnames}"
                raise InputError(msg)
            shares: dict[str, float] = {}
            for line, row in enumerate(reader, start=2):
                try:
                    shares[row["domain"].strip()] = float(row["share"])
                except (TypeError, ValueError) as exc:
                    msg = f"{path}:{line}: share: expected a number, got {row['share']!r}"
                    raise InputError(msg) from exc
        return _check(path, shares)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: not valid TOML ({exc})"
        raise InputError(msg) from exc
    table = doc.get("mix")
    if not isinstance(table, dict):
        msg = f"{path}: expected a [mix] table of domain = share"
        raise InputError(msg)
    return _check(path, table)
