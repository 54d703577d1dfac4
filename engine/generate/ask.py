"""Ask many prompts, validate each answer, and re-ask the invalid ones with a stricter prompt.

A re-ask appends the rejected answer and `prompts.STRICT` (with the reason) to the conversation, so it
is a different request (its own cache entry) and the model sees what was wrong. After `max_repairs`
re-asks the last problem stands and the caller records it as the row's reject reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.generate.client import ChatClient, Endpoint, Messages, Reply
from engine.generate.prompts import STRICT
from engine.generate.qa import Problem


@dataclass(frozen=True, slots=True)
class Answer:
    """The final state of one prompt: a parsed value, or the reason it has none."""

    value: Any
    problem: Problem | None
    reply: Reply
    attempts: int


Parse = Callable[[str], tuple[Any, Problem | None]]


def ask_all(
    client: ChatClient,
    jobs: Sequence[tuple[Endpoint, Messages]],
    parse: Parse,
    params: Mapping[str, Any],
    *,
    max_repairs: int = 2,
    on_done: Callable[[int], None] | None = None,
    strict: str = STRICT,
) -> list[Answer]:
    """One Answer per job, in order; request failures (incl. budget) are Answers with a problem too."""
    convo: list[list[Mapping[str, str]]] = [list(m) for _, m in jobs]
    answers: list[Answer | None] = [None] * len(jobs)
    todo = list(range(len(jobs)))
    for attempt in range(max_repairs + 1):
        replies = client.map(((jobs[i][0], convo[i], params) for i in todo), on_done if attempt == 0 else None)
        retry: list[int] = []
        for i, reply in zip(todo, replies, strict=True):
            if reply.content is None:
                answers[i] = Answer(
                    None, Problem(None, reply.error or "request_failed", reply.detail), reply, attempt + 1
                )
                continue
            value, problem = parse(reply.content)
            answers[i] = Answer(value, problem, reply, attempt + 1)
            if problem is not None and attempt < max_repairs:
                convo[i] = [
                    *convo[i],
                    {"role": "assistant", "content": reply.content},
                    {"role": "user", "content": strict.format(reason=f"{problem.reason}: {problem.detail}")},
                ]
                retry.append(i)
        todo = retry
        if not todo:
            break
    return [a for a in answers if a is not None]
