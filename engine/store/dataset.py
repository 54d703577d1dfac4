"""Open a dataset directory and scan it as one LazyFrame (canonical columns plus every stage's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import StoreError
from engine.store.location import ObjectPath, Where, location
from engine.store.manifest import read_manifest
from engine.store.partitions import scan_partition, stage_dir


@dataclass(frozen=True, slots=True)
class Dataset:
    root: Where
    manifest: dict[str, Any]

    @property
    def partitions(self) -> list[str]:
        return [p["name"] for p in self.manifest["partitions"]]

    @property
    def stage_names(self) -> list[str]:
        """Stages in the order they were first run: a stage sees the columns of those before it."""
        return [s["stage"] for s in self.manifest.get("stages", [])]

    def scan(self, stages: list[str] | None = None) -> pl.LazyFrame:
        """All rows, canonical columns plus the columns of `stages` (default: every stage run so far)."""
        names = self.stage_names if stages is None else stages
        parts = [scan_partition(self.root, p, names) for p in self.partitions]
        if not parts:
            msg = f"{self.root}: the dataset has no partitions; re-run the ingest"
            raise StoreError(msg)
        return pl.concat(parts, how="diagonal_relaxed")

    def scan_rejects(self) -> pl.LazyFrame | None:
        files = sorted((self.root / "rejects").glob("part-*.parquet"))
        return pl.scan_parquet([str(f) for f in files]) if files else None

    def missing_stage_parts(self, stage: str) -> list[str]:
        return [p for p in self.partitions if not (stage_dir(self.root, stage) / p).exists()]


def open_dataset(root: str | Path | ObjectPath) -> Dataset:
    """Open `root` (a directory or an s3:// / gs:// prefix), checking every partition the manifest lists is there."""
    root = location(root)
    manifest = read_manifest(root)
    for part in manifest["partitions"]:
        if not (root / part["name"]).exists():
            msg = f"{root}: partition {part['name']} is listed in the manifest but missing; re-run the ingest"
            raise StoreError(msg)
    return Dataset(root, manifest)
