"""A run budget in requests and tokens that is never exceeded, even with many requests in flight.

Before a request is sent it reserves an upper bound of its cost: one request, and its prompt's UTF-8
bytes (a BPE token is at least one byte) plus a per-message allowance plus `max_tokens` for the answer.
The reservation is replaced by the real `usage` when the answer arrives. A request whose reservation
does not fit is refused, so the spent total can never pass the limit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from engine.errors import ConfigError

MESSAGE_OVERHEAD_TOKENS = 8
"""Chat-template tokens per message (role markers); generous for the common templates."""


@dataclass(slots=True)
class Spent:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Budget:
    """Limits (None = unlimited) and the running totals; thread-safe."""

    def __init__(self, *, max_requests: int | None = None, max_tokens: int | None = None) -> None:
        for name, value in (("--max-requests", max_requests), ("--max-tokens", max_tokens)):
            if value is not None and value < 1:
                msg = f"{name} {value}: expected a positive number, or leave it out for no limit"
                raise ConfigError(msg)
        self.max_requests = max_requests
        self.max_tokens = max_tokens
        self.spent = Spent()
        self.refused = 0
        self._held_requests = 0
        self._held_tokens = 0
        self._lock = threading.Lock()

    def reserve(self, bound_tokens: int) -> bool:
        """Hold room for one request costing at most `bound_tokens`; False (and counted) when it does not fit."""
        with self._lock:
            over_req = (
                self.max_requests is not None and self.spent.requests + self._held_requests + 1 > self.max_requests
            )
            over_tok = (
                self.max_tokens is not None and self.spent.tokens + self._held_tokens + bound_tokens > self.max_tokens
            )
            if over_req or over_tok or self.refused:  # sticky: once full, the run stops cleanly
                self.refused += 1
                return False
            self._held_requests += 1
            self._held_tokens += bound_tokens
            return True

    def settle(self, bound_tokens: int, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """Replace a reservation by what the server reported (the bound itself when it reported nothing)."""
        with self._lock:
            self._held_requests -= 1
            self._held_tokens -= bound_tokens
            self.spent.requests += 1
            if prompt_tokens is None and completion_tokens is None:
                self.spent.prompt_tokens += bound_tokens
            else:
                self.spent.prompt_tokens += prompt_tokens or 0
                self.spent.completion_tokens += completion_tokens or 0

    def release(self, bound_tokens: int) -> None:
        """Give a reservation back: the request failed before the server did any work we pay for."""
        with self._lock:
            self._held_requests -= 1
            self._held_tokens -= bound_tokens

    @property
    def exhausted(self) -> bool:
        return self.refused > 0
