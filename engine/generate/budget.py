"""A run budget in requests, tokens and money that is never exceeded, even with many requests in flight.

Before a request is sent it holds an upper bound of its cost: one request, its prompt's UTF-8 bytes
(a BPE token is at least one byte) plus a per-message allowance as prompt tokens, `max_tokens` as
completion tokens, and those priced at the model's rates. The hold is replaced by the real `usage`
when the answer arrives (the bound itself when the server reports none). A request whose hold does not
fit is refused, so the spent total can never pass a limit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from engine.errors import ConfigError

MESSAGE_OVERHEAD_TOKENS = 8
"""Chat-template tokens per message (role markers); generous for the common templates."""


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens, as providers publish them."""

    prompt: float
    completion: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


FREE = Price(0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a run may spend (None = no limit) and its price table, as the user gave them on the command line."""

    max_requests: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    price: tuple[str, ...] = ()  # MODEL=PROMPT,COMPLETION (US$ per million tokens)
    prices: str | None = None  # a TOML or JSON price table file


@dataclass(slots=True)
class Spent:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, prompt_tokens: int, completion_tokens: int, cost: float) -> None:
        self.requests += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost += cost

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cost": round(self.cost, 6)}


@dataclass(frozen=True, slots=True)
class Hold:
    """What one in-flight request may cost at most."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class _Held:
    requests: int = 0
    tokens: int = 0
    cost: float = 0.0


class Budget:
    """Limits (None = unlimited), the price table, and the running totals (overall and per model); thread-safe."""

    def __init__(
        self,
        *,
        max_requests: int | None = None,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        prices: Mapping[str, Price] | None = None,
    ) -> None:
        for name, value in (("--max-requests", max_requests), ("--max-tokens", max_tokens), ("--max-cost", max_cost)):
            if value is not None and value <= 0:
                msg = f"{name} {value}: expected a positive number, or leave it out for no limit"
                raise ConfigError(msg)
        self.max_requests = max_requests
        self.max_tokens = max_tokens
        self.max_cost = max_cost
        self.prices = dict(prices or {})
        self.spent = Spent()
        self.by_model: dict[str, Spent] = {}
        self.refused = 0
        self._held = _Held()
        self._lock = threading.Lock()

    def check_models(self, models: Iterable[str]) -> None:
        """With a money limit every model needs a price, or the limit could not be kept."""
        if self.max_cost is None:
            return
        missing = sorted({m for m in models if m not in self.prices})
        if missing:
            msg = (
                f"--max-cost: no price for model {missing[0]!r}; add --price {missing[0]}=PROMPT,COMPLETION "
                "(US$ per million tokens) or a --prices file"
            )
            raise ConfigError(msg)

    def price(self, model: str) -> Price:
        if model in self.prices:
            return self.prices[model]
        self.check_models([model])
        return FREE

    def reserve(self, model: str, prompt_tokens: int, completion_tokens: int) -> Hold | None:
        """Hold room for one request; None (and counted) when it does not fit."""
        hold = Hold(model, prompt_tokens, completion_tokens, self.price(model).cost(prompt_tokens, completion_tokens))
        with self._lock:
            s, h = self.spent, self._held
            over = (
                (self.max_requests is not None and s.requests + h.requests + 1 > self.max_requests)
                or (self.max_tokens is not None and s.tokens + h.tokens + hold.tokens > self.max_tokens)
                or (self.max_cost is not None and s.cost + h.cost + hold.cost > self.max_cost)
            )
            if over or self.refused:  # sticky: once full, the run stops cleanly
                self.refused += 1
                return None
            h.requests += 1
            h.tokens += hold.tokens
            h.cost += hold.cost
            return hold

    def settle(self, hold: Hold, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """Replace a hold by what the server reported (the hold itself when it reported nothing).

        A server that reports more than the hold (a longer chat template than allowed for) is charged
        what it reports; the hold's margin makes that rare, and later requests see the true total.
        """
        if prompt_tokens is None and completion_tokens is None:
            p, c = hold.prompt_tokens, hold.completion_tokens
        else:
            p, c = prompt_tokens or 0, completion_tokens or 0
        cost = self.price(hold.model).cost(p, c)
        with self._lock:
            self._unhold(hold)
            self.spent.add(p, c, cost)
            self.by_model.setdefault(hold.model, Spent()).add(p, c, cost)

    def release(self, hold: Hold) -> None:
        """Give a hold back: the request failed before the server did any work we pay for."""
        with self._lock:
            self._unhold(hold)

    def _unhold(self, hold: Hold) -> None:
        self._held.requests -= 1
        self._held.tokens -= hold.tokens
        self._held.cost -= hold.cost

    @property
    def exhausted(self) -> bool:
        return self.refused > 0

    def usage(self) -> dict[str, Any]:
        """Spent totals, per model and the limits, for the manifest and the CLI summary."""
        with self._lock:
            return {
                **self.spent.as_dict(),
                "by_model": {m: s.as_dict() for m, s in sorted(self.by_model.items())},
                "limits": {"requests": self.max_requests, "tokens": self.max_tokens, "cost": self.max_cost},
            }
