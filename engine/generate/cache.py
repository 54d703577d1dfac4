"""A persistent response cache (SQLite) so a rerun or a resumed run pays for no request twice.

The key hashes the model, the base URL, the messages and the sampling parameters, never the API key.
Each answer is committed as soon as it arrives (WAL mode, `synchronous=normal`, one connection guarded by
a lock), so a run killed at any point keeps every answer it received.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.errors import StoreError


def default_cache_path() -> Path:
    """$DISTILL_HOME/llm-cache.sqlite, default ~/.cache/distill/llm-cache.sqlite."""
    home = os.environ.get("DISTILL_HOME") or Path.home() / ".cache" / "distill"
    return Path(home) / "llm-cache.sqlite"


def request_key(model: str, base_url: str, messages: Sequence[Mapping[str, str]], params: Mapping[str, Any]) -> str:
    blob = json.dumps(
        {"model": model, "base_url": base_url.rstrip("/"), "messages": list(messages), "params": dict(params)},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """key -> completion JSON; thread-safe, committed per put."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._con.execute("pragma journal_mode=wal")
            # a commit survives a killed process in WAL mode without an fsync per answer (151 -> 26 us a put,
            # bench/generate.py); only an OS crash or power loss can drop the last answers, which are asked again
            self._con.execute("pragma synchronous=normal")
            self._con.execute("create table if not exists responses (key text primary key, body text not null)")
        except sqlite3.Error as exc:
            msg = f"{self.path}: cannot open the response cache ({exc}); pass another --cache path"
            raise StoreError(msg) from exc
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._con.execute("select body from responses where key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, body: Mapping[str, Any]) -> None:
        with self._lock:
            self._con.execute(
                "insert or replace into responses (key, body) values (?, ?)", (key, json.dumps(body, sort_keys=True))
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._con.execute("select count(*) from responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._con.close()
