"""Trainer formats as Polars expressions over canonical rows, one `Group` per output file family.

A format holds some kinds; each held kind goes to a group (alpaca: sft, dpo, kto), and each group is
written as one file per split. Rows a format cannot hold are *unsupported*: export fails naming them,
or leaves them out with `skip_unsupported` (README "Export"). JSON Lines rows are built as one
`__line` string per row where the format needs raw JSON spliced in (OpenAI tool calls and tools are
JSON text in the canonical schema and must stay JSON, not become quoted strings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from engine.export.turns import NO_TURNS, alternates, pairs, split_leading_system, target, turns, with_system_turn
from engine.stages.views import prompt_text

LINE = "__line"
FORMATS: tuple[str, ...] = ("parquet", "jsonl", "alpaca", "sharegpt", "openai", "llama-factory", "mlx-lm")
STYLES: tuple[str, ...] = ("chat", "completions", "text")


@dataclass(frozen=True, slots=True)
class Group:
    """Rows of `kinds` that pass `ok`, written by `render` to `<name>_<split>.<ext>`."""

    name: str
    kinds: tuple[str, ...]
    render: Callable[[], list[pl.Expr]]
    ok: Callable[[], pl.Expr] = field(default=lambda: pl.lit(True))
    unsupported: str = ""
    entry: dict[str, Any] | None = None  # LLaMA-Factory dataset_info entry, less file_name


# ---------------------------------------------------------------- JSON text pieces


def json_str(x: pl.Expr) -> pl.Expr:
    """A String expression as a JSON string literal (null -> null)."""
    return pl.struct(x.alias("v")).struct.json_encode().str.slice(5).str.head(-1)


def _turn_json() -> pl.Expr:
    """One canonical message as an OpenAI message object; a tool call becomes `tool_calls`."""
    e = pl.element()
    role, content, calls = (e.struct.field(n) for n in ("role", "content", "tool_calls"))
    # canonical tool_calls is the call's JSON: a list (from OpenAI sources) stays, one call gets wrapped
    call_json = (
        pl.when(calls.str.strip_chars_start().str.starts_with("["))
        .then(calls)
        .otherwise(pl.concat_str(pl.lit('[{"type":"function","function":'), calls, pl.lit("}]")))
    )
    head = pl.concat_str(pl.lit('{"role":'), json_str(role))
    return (
        pl.when(calls.is_not_null() & (content.fill_null("") == ""))
        .then(pl.concat_str(head, pl.lit(',"tool_calls":'), call_json, pl.lit("}")))
        .when(calls.is_not_null())
        .then(
            pl.concat_str(
                head, pl.lit(',"content":'), json_str(content), pl.lit(',"tool_calls":'), call_json, pl.lit("}")
            )
        )
        .otherwise(pl.concat_str(head, pl.lit(',"content":'), json_str(content), pl.lit("}")))
    )


def messages_line() -> list[pl.Expr]:
    """`{"messages": [...], "tools": [...]}`: OpenAI chat fine-tuning and mlx-lm's chat/tools format."""
    msgs = with_system_turn(turns()).list.eval(_turn_json()).list.join(",")
    tools = pl.col("tools")
    has_tools = tools.is_not_null() & ~tools.str.strip_chars().is_in(["", "[]", "null"])
    extra = pl.when(has_tools).then(pl.concat_str(pl.lit(',"tools":'), tools)).otherwise(pl.lit(""))
    return [pl.concat_str(pl.lit('{"messages":['), msgs, pl.lit("]"), extra, pl.lit("}")).alias(LINE)]


def _no_text_with_call() -> pl.Expr:
    """ShareGPT has no turn holding both text and a tool call."""
    e = pl.element()
    both = (e.struct.field("tool_calls").is_not_null() & (e.struct.field("content").fill_null("") != "")).any()
    return ~turns().list.eval(both).list.first().fill_null(False)


# ---------------------------------------------------------------- sharegpt

_SHAREGPT_ROLE = {"user": "human", "assistant": "gpt", "tool": "observation", "system": "system"}


def sharegpt_turns(turns_: pl.Expr) -> pl.Expr:
    """Canonical messages as ShareGPT {from, value}: a tool call is a `function_call` turn."""
    e = pl.element()
    role, content, calls = (e.struct.field(n) for n in ("role", "content", "tool_calls"))
    is_call = calls.is_not_null() & (content.fill_null("") == "")
    frm = pl.when(is_call).then(pl.lit("function_call")).otherwise(role.replace_strict(_SHAREGPT_ROLE, default=role))
    value = pl.when(is_call).then(calls).otherwise(content)
    return turns_.list.eval(pl.struct(frm.alias("from"), value.alias("value")))


def _gpt(text: pl.Expr) -> pl.Expr:
    return pl.struct(pl.lit("gpt").alias("from"), text.alias("value"))


def _sharegpt_chat() -> list[pl.Expr]:
    return [
        sharegpt_turns(turns()).alias("conversations"),
        pl.col("system"),
        pl.col("tools"),
    ]


def _sharegpt_dpo() -> list[pl.Expr]:
    return [
        sharegpt_turns(turns()).alias("conversations"),
        _gpt(pl.col("chosen")).alias("chosen"),
        _gpt(pl.col("rejected")).alias("rejected"),
        pl.col("system"),
    ]


def _sharegpt_kto() -> list[pl.Expr]:
    return [sharegpt_turns(turns()).alias("conversations"), pl.col("label").alias("kto_tag"), pl.col("system")]


# ---------------------------------------------------------------- alpaca


def _history() -> tuple[pl.Expr, pl.Expr]:
    return split_leading_system(pl.col("history").fill_null(NO_TURNS))


def _alpaca_ok() -> pl.Expr:
    return alternates(_history()[0])


def _alpaca_common() -> list[pl.Expr]:
    rest, system = _history()
    return [system.alias("system"), pairs(rest).alias("history")]


def _alpaca_sft() -> list[pl.Expr]:
    sft = pl.col("kind") == "sft"
    return [
        pl.when(sft).then(pl.col("instruction")).otherwise(pl.col("problem")).alias("instruction"),
        pl.when(sft).then(pl.col("input").fill_null("")).otherwise(pl.lit("")).alias("input"),
        target().alias("output"),
        *_alpaca_common(),
    ]


def _alpaca_dpo() -> list[pl.Expr]:
    return [
        pl.col("prompt").alias("instruction"),
        pl.lit("").alias("input"),
        pl.col("chosen"),
        pl.col("rejected"),
        *_alpaca_common(),
    ]


def _alpaca_kto() -> list[pl.Expr]:
    return [
        pl.col("prompt").alias("instruction"),
        pl.lit("").alias("input"),
        pl.col("completion").alias("output"),
        pl.col("label").alias("kto_tag"),
        *_alpaca_common(),
    ]


# ---------------------------------------------------------------- mlx-lm


def _completions() -> list[pl.Expr]:
    return [prompt_text().alias("prompt"), target().alias("completion")]


def _no_history() -> pl.Expr:
    return pl.col("history").list.len().fill_null(0) == 0


def _text() -> list[pl.Expr]:
    return [pl.col("text")]


_NOT_ALTERNATING = "history is not user/assistant pairs"
_TEXT_AND_CALL = "a turn has both text and a tool call"
_SFT_COLS = {"prompt": "instruction", "query": "input", "response": "output", "system": "system", "history": "history"}


def groups(fmt: str, style: str = "chat") -> tuple[Group, ...]:
    """The output groups of a JSON format (parquet and jsonl keep canonical rows: see `export.py`)."""
    alpaca = (
        Group("sft", ("sft", "rlvr"), _alpaca_sft, _alpaca_ok, _NOT_ALTERNATING, {"columns": _SFT_COLS}),
        Group("dpo", ("dpo",), _alpaca_dpo, _alpaca_ok, _NOT_ALTERNATING),
        Group("kto", ("kto",), _alpaca_kto, _alpaca_ok, _NOT_ALTERNATING),
    )
    sharegpt = (
        Group("chat", ("chat", "sft", "rlvr"), _sharegpt_chat, _no_text_with_call, _TEXT_AND_CALL),
        Group("dpo", ("dpo",), _sharegpt_dpo, _no_text_with_call, _TEXT_AND_CALL),
        Group("kto", ("kto",), _sharegpt_kto, _no_text_with_call, _TEXT_AND_CALL),
    )
    sg = {"formatting": "sharegpt"}
    if fmt == "alpaca":
        return alpaca
    if fmt == "sharegpt":
        return sharegpt
    if fmt == "openai":
        return (Group("chat", ("chat", "sft", "rlvr"), messages_line),)
    if fmt == "llama-factory":
        return (
            alpaca[0],
            Group(
                "chat",
                ("chat",),
                _sharegpt_chat,
                _no_text_with_call,
                _TEXT_AND_CALL,
                {**sg, "columns": {"messages": "conversations", "system": "system", "tools": "tools"}},
            ),
            Group(
                "dpo",
                ("dpo",),
                _sharegpt_dpo,
                _no_text_with_call,
                _TEXT_AND_CALL,
                {
                    **sg,
                    "ranking": True,
                    "columns": {
                        "messages": "conversations",
                        "chosen": "chosen",
                        "rejected": "rejected",
                        "system": "system",
                    },
                },
            ),
            Group(
                "kto",
                ("kto",),
                _sharegpt_kto,
                _no_text_with_call,
                _TEXT_AND_CALL,
                {**sg, "columns": {"messages": "conversations", "kto_tag": "kto_tag", "system": "system"}},
            ),
            Group("pt", ("text",), _text, entry={"columns": {"prompt": "text"}}),
        )
    if fmt == "mlx-lm":
        if style == "chat":
            return (Group("", ("chat", "sft", "rlvr"), messages_line),)
        if style == "completions":
            return (Group("", ("sft", "rlvr"), _completions, _no_history, "multi-turn history needs --style chat"),)
        return (Group("", ("text",), _text),)
    return (Group("", ("sft", "chat", "dpo", "kto", "rlvr", "text"), lambda: []),)
