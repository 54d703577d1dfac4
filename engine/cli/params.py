"""Shared typer arguments and options."""

from __future__ import annotations

from typing import Annotated

import typer

from engine.api import Limits

DatasetDir = Annotated[
    str,
    typer.Argument(
        help="A dataset made by `distill ingest`: a directory, or an s3://bucket/prefix or gs://bucket/prefix.",
        show_default=False,
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final summary, no progress bars.")]
Engine = Annotated[
    str,
    typer.Option(
        "--engine",
        help='Where partitions run: local, or ray (one Ray task per partition, same bytes; pip install -e ".[ray]").',
    ),
]
Address = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="With --engine ray: the cluster to join, auto or HOST:PORT (default: start a local Ray).",
        show_default=False,
    ),
]
Settings = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Stage option as KEY=VALUE; repeat for several (see the stage table in README).",
        show_default=False,
    ),
]
MaxRequests = Annotated[
    int | None, typer.Option(help="Stop before the run sends more requests than this (no limit by default).")
]
MaxTokens = Annotated[
    int | None,
    typer.Option(help="Stop before the run spends more prompt + completion tokens than this (no limit by default)."),
]
MaxCost = Annotated[
    float | None,
    typer.Option(
        help="Stop before the run spends more US$ than this, at the --price/--prices rates (every model needs one).",
        show_default=False,
    ),
]
PriceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--price",
        help="MODEL=PROMPT,COMPLETION in US$ per million tokens, e.g. gpt-4o=2.5,10; repeat per model.",
        show_default=False,
    ),
]
PricesFile = Annotated[
    str | None,
    typer.Option(
        "--prices",
        help='A TOML or JSON price table: [prices] "gpt-4o" = {prompt = 2.5, completion = 10.0} (US$ per million tokens).',
        show_default=False,
    ),
]
Teachers = Annotated[
    list[str],
    typer.Option(help="NAME=MODEL@BASE_URL[:SHARE]; repeat to share the rows by percentage.", show_default=False),
]
Concurrency = Annotated[int, typer.Option(help="Requests in flight at once.")]
LlmCache = Annotated[
    str | None, typer.Option(help="Response cache (default ~/.cache/distill/llm-cache.sqlite).", show_default=False)
]


def limits(
    max_requests: int | None,
    max_tokens: int | None,
    max_cost: float | None,
    price: list[str] | None,
    prices: str | None,
) -> Limits:
    """The run's spending limits from the budget options every LLM command takes."""
    return Limits(max_requests, max_tokens, max_cost, tuple(price or ()), prices)


def usage_line(spent: dict) -> str:  # type: ignore[type-arg]
    """`N requests, T tokens, $C` for a run's usage."""
    cost = f", ${spent['cost']:.4f}" if spent.get("cost") else ""
    return f"{spent['requests']} requests, {spent['prompt_tokens'] + spent['completion_tokens']} tokens{cost}"
