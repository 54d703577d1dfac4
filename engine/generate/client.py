"""An OpenAI-compatible chat-completions client: cache, retries with backoff, bounded concurrency, budget.

Stdlib only (urllib + a thread pool): requests are I/O bound, so threads give the concurrency without
an async runtime or an SDK. Every request goes through `complete`: a cache hit costs nothing; a miss
reserves budget, then POSTs `{base_url}/chat/completions`, retrying 429, 5xx, timeouts, dropped
connections and bodies that are not a chat completion, with exponential backoff and full jitter, or the
server's Retry-After when it sends one.
The API key is read from the environment at call time and never stored, cached or logged.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from engine.generate.budget import MESSAGE_OVERHEAD_TOKENS, Budget
from engine.generate.cache import ResponseCache, request_key

Messages = Sequence[Mapping[str, str]]
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One model behind one OpenAI-compatible server; `key_env` names the env var holding its API key."""

    name: str
    model: str
    base_url: str
    key_env: str = "OPENAI_API_KEY"


@dataclass(frozen=True, slots=True)
class Reply:
    """A finished request: `content` on success, else `error` (a reason code) and `detail`."""

    content: str | None
    cached: bool = False
    error: str | None = None
    detail: str = ""
    usage: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class ClientStats:
    sent: int = 0
    cache_hits: int = 0
    retries: int = 0
    retry_wait_s: float = 0.0
    failed: int = 0


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def prompt_bound(messages: Messages) -> int:
    """An upper bound on the prompt tokens a request can be billed: prompt bytes + chat-template allowance."""
    return sum(len(m.get("content", "").encode()) + MESSAGE_OVERHEAD_TOKENS for m in messages)


class ChatClient:
    """Thread-safe; share one per run so the cache, budget and stats are shared too."""

    def __init__(
        self,
        cache: ResponseCache,
        budget: Budget | None = None,
        *,
        concurrency: int = 64,
        max_retries: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cache = cache
        self.budget = budget or Budget()
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.stats = ClientStats()
        self._sleep = sleep
        self._lock = threading.Lock()

    def _count(self, **add: float) -> None:
        with self._lock:
            for k, v in add.items():
                setattr(self.stats, k, getattr(self.stats, k) + v)

    def complete(self, ep: Endpoint, messages: Messages, params: Mapping[str, Any]) -> Reply:
        """One chat completion: from the cache, or from the server (with retries), or a Reply with an error."""
        key = request_key(ep.model, ep.base_url, messages, params)
        if (hit := self.cache.get(key)) is not None:
            self._count(cache_hits=1)
            return Reply(hit["content"], cached=True, usage=hit.get("usage") or {})
        hold = self.budget.reserve(ep.model, prompt_bound(messages), int(params.get("max_tokens", 1024)))
        if hold is None:
            return Reply(None, error="budget_exhausted", detail="the run budget has no room for this request")
        body = json.dumps({"model": ep.model, "messages": list(messages), **params}).encode()
        reply = self._post(ep, body)
        if reply.error is None:
            usage = reply.usage
            self.budget.settle(hold, usage.get("prompt_tokens"), usage.get("completion_tokens"))
            self.cache.put(key, {"content": reply.content, "usage": dict(usage), "model": ep.model})
        else:
            self.budget.release(hold)
            self._count(failed=1)
        return reply

    def _post(self, ep: Endpoint, body: bytes) -> Reply:
        url = ep.base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key := os.environ.get(ep.key_env):
            headers["Authorization"] = f"Bearer {key}"
        error, detail = "request_failed", ""
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            try:
                req = urllib.request.Request(url, data=body, headers=headers, method="POST")
                self._count(sent=1)
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    reply = _parse_completion(resp.read())
                if reply.error is None:
                    return reply
                error, detail = reply.error, reply.detail  # a proxy's error page or a cut body: ask again
            except urllib.error.HTTPError as exc:
                error, detail = f"http_{exc.code}", exc.read()[:300].decode("utf-8", "replace")
                if exc.code not in RETRY_STATUS:
                    return Reply(None, error=error, detail=detail)
                wait = _retry_after(exc.headers.get("Retry-After"))
            except TimeoutError:
                error, detail = "timeout", f"no answer within {self.timeout_s:g}s"
            except (urllib.error.URLError, ConnectionError) as exc:
                error, detail = "connection_error", str(getattr(exc, "reason", exc))
            if attempt == self.max_retries:
                break
            if wait is None:
                wait = random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt))
            self._count(retries=1, retry_wait_s=wait)
            self._sleep(wait)
        return Reply(None, error=error, detail=f"{detail} (after {self.max_retries} retries)")

    def map(
        self, jobs: Iterable[tuple[Endpoint, Messages, Mapping[str, Any]]], on_done: Callable[[int], None] | None = None
    ) -> list[Reply]:
        """Run many requests with at most `concurrency` in flight; replies in the order of `jobs`."""
        jobs = list(jobs)
        if not jobs:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs))) as pool:
            futures = [pool.submit(self.complete, *job) for job in jobs]
            out = []
            for i, fut in enumerate(futures, start=1):
                out.append(fut.result())
                if on_done is not None:
                    on_done(i)
        return out


def _parse_completion(raw: bytes) -> Reply:
    """The first choice's message content and the usage of a chat-completions response body."""
    try:
        doc = json.loads(raw)
        content = doc["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return Reply(None, error="bad_response", detail=f"not a chat completion ({exc!r}): {raw[:200]!r}")
    if content is None:
        content = ""  # mlx_lm and others send null when the first token ends the answer: an empty answer
    if not isinstance(content, str):
        return Reply(None, error="bad_response", detail=f"message content is {type(content).__name__}, not text")
    usage = doc.get("usage") or {}
    return Reply(content, usage={k: int(v) for k, v in usage.items() if isinstance(v, int)})
