"""Per-kind views of a canonical row as one prompt and one response string, as Polars expressions.

Every kind has a natural "what the model is asked" and "what it should answer"; stages that score
text (length, heuristics, IFD, dedup) read these instead of branching on kind themselves.
- sft: instruction (+ blank line + input when non-empty) -> response
- chat: every turn before the last assistant turn -> that assistant turn
- dpo: prompt -> chosen;  kto: prompt -> completion
- rlvr: problem -> solution, or the answer when there is no solution
- text: no prompt -> text
"""

from __future__ import annotations

import polars as pl


def turns_text(messages: pl.Expr) -> pl.Expr:
    """Join turns as 'role: content' lines (a tool call's JSON stands in for empty content)."""
    return messages.list.eval(
        pl.element().struct.field("role")
        + pl.lit(": ")
        + pl.when(pl.element().struct.field("content") == "")
        .then(pl.element().struct.field("tool_calls").fill_null(""))
        .otherwise(pl.element().struct.field("content"))
    ).list.join("\n")


def last_assistant_index() -> pl.Expr:
    """Index of the last assistant turn in `messages` (null when there is none)."""
    is_assistant = pl.col("messages").list.eval(pl.element().struct.field("role") == "assistant")
    return is_assistant.list.eval(pl.element().arg_true()).list.last()


def prompt_text() -> pl.Expr:
    """What the model is asked, as one string (null for text rows)."""
    kind = pl.col("kind")
    sft = (
        pl.when(pl.col("input").fill_null("") == "")
        .then(pl.col("instruction"))
        .otherwise(pl.concat_str(pl.col("instruction"), pl.lit("\n\n"), pl.col("input")))
    )
    chat = turns_text(pl.col("messages").list.slice(0, last_assistant_index()))
    return (
        pl.when(kind == "sft")
        .then(sft)
        .when(kind == "chat")
        .then(chat)
        .when(kind.is_in(["dpo", "kto"]))
        .then(pl.col("prompt"))
        .when(kind == "rlvr")
        .then(pl.col("problem"))
        .otherwise(pl.lit(None, pl.String))
    )


def response_text() -> pl.Expr:
    """What the model should answer, as one string."""
    kind = pl.col("kind")
    chat = pl.col("messages").list.get(last_assistant_index(), null_on_oob=True).struct.field("content")
    return (
        pl.when(kind == "sft")
        .then(pl.col("response"))
        .when(kind == "chat")
        .then(chat)
        .when(kind == "dpo")
        .then(pl.col("chosen"))
        .when(kind == "kto")
        .then(pl.col("completion"))
        .when(kind == "rlvr")
        .then(pl.coalesce(pl.col("solution"), pl.col("answer")))
        .otherwise(pl.col("text"))
    )


def prompt_turns() -> pl.Expr:
    """The conversation before the answer as List({role, content}) for a chat template; null without a prompt.

    Chat rows keep their turns (a tool call's JSON stands in for empty content); other kinds become one user
    turn, after a system turn where the row has a system prompt. IFD scores and experiments train on these.
    """
    chat = (
        pl.col("messages")
        .list.slice(0, last_assistant_index())
        .list.eval(
            pl.struct(
                role=pl.element().struct.field("role"),
                content=pl.when(pl.element().struct.field("content").fill_null("") == "")
                .then(pl.element().struct.field("tool_calls").fill_null(""))
                .otherwise(pl.element().struct.field("content")),
            )
        )
    )
    user = pl.struct(role=pl.lit("user"), content=prompt_text())
    system = pl.struct(role=pl.lit("system"), content=pl.col("system"))
    return (
        pl.when(pl.col("kind") == "chat")
        .then(chat)
        .when(prompt_text().fill_null("") == "")
        .then(pl.lit(None))
        .when(pl.col("system").fill_null("") != "")
        .then(pl.concat_list(system, user))
        .otherwise(pl.concat_list(user))
    )


VIEW_READS = (
    "kind",
    "instruction",
    "input",
    "response",
    "messages",
    "prompt",
    "chosen",
    "completion",
    "problem",
    "solution",
    "answer",
    "text",
)
"""Every column the per-kind views (and the dedup text) read: a text stage's `reads`."""

TOKEN_PATTERN = r"\w+|[^\w\s]"


def count_tokens(text: pl.Expr) -> pl.Expr:
    """Approximate tokens: words and single punctuation marks (a tokenizer-free, stable count)."""
    return text.str.count_matches(TOKEN_PATTERN).cast(pl.UInt32)
