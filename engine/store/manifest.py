"""The dataset manifest (`manifest.json`): kinds, counts, sources, partitions and the stage log.

Written atomically (temp name, then rename) so a killed run never leaves half a manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.errors import StoreError
from engine.store.location import Where, atomic_output

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def manifest_path(root: Where) -> Where:
    return root / MANIFEST


def read_manifest(root: Where) -> dict[str, Any]:
    """Load `root/manifest.json`, or explain what `root` is missing."""
    path = manifest_path(root)
    if not root.exists():
        msg = f"{root}: no such dataset directory; create one with `distill ingest SRC --out {root}`"
        raise StoreError(msg)
    if not path.exists():
        msg = f"{root}: not a dataset directory (no {MANIFEST}); create one with `distill ingest SRC --out {root}`"
        raise StoreError(msg)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"{path}: unreadable manifest ({exc}); re-run the ingest that made it"
        raise StoreError(msg) from exc
    if data.get("format_version") != FORMAT_VERSION:
        msg = f"{path}: manifest format {data.get('format_version')!r}, expected {FORMAT_VERSION}; re-ingest with this distill"
        raise StoreError(msg)
    return data


def write_json_atomic(path: Where, data: Any) -> None:
    text = (json.dumps(data, indent=2, sort_keys=False) + "\n").encode()
    with atomic_output(path) as sink:
        sink.write_bytes(text) if isinstance(sink, Path) else sink.write(text)


def write_manifest(root: Where, data: dict[str, Any]) -> None:
    write_json_atomic(manifest_path(root), data)
