"""Source formats: detect them from field names and map their rows to canonical records, columnarly.

Each format binds canonical *slots* to source fields (first alias present, or `--map slot=field`).
Bound fields are renamed `__<slot>`; every other field is unknown and kept in `meta`. A converter
returns the kind's fields plus `_reason`, `_field`, `_detail`: rows with a reason become rejects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from engine.errors import ConfigError, InputError, did_you_mean

MSG = pl.Struct({"role": pl.String, "content": pl.String, "tool_calls": pl.String})

ROLE_MAP = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "chatgpt": "assistant",
    "function_call": "assistant",
    "tool": "tool",
    "observation": "tool",
    "function": "tool",
    "ipython": "tool",
}
TOOL_CALL_ROLES = ("function_call",)


@dataclass(frozen=True, slots=True)
class Format:
    name: str
    kind: str
    slots: Mapping[str, tuple[str, ...]]
    text_slots: tuple[str, ...]
    doc: str
    optional_text: tuple[str, ...] = ("input", "system")
    """Text slots bound to their first alias even when the sampled rows lack them (later rows may have them)."""

    def bind(self, fields: list[str], overrides: Mapping[str, str]) -> dict[str, str]:
        """slot -> source field for this file's fields."""
        for slot in overrides:
            if slot not in self.slots:
                msg = (
                    f"--map {slot}=...: {slot!r} is not a field of the {self.name} format"
                    f"{did_you_mean(slot, self.slots)} (fields: {', '.join(self.slots)})"
                )
                raise ConfigError(msg)
        bound: dict[str, str] = {}
        for slot, aliases in self.slots.items():
            if slot in overrides:
                bound[slot] = overrides[slot]
                continue
            hit = next((a for a in aliases if a in fields and a not in overrides.values()), None)
            if hit is None and slot in self.text_slots and slot in self.optional_text:
                hit = aliases[0]  # optional text that later rows may have though the sampled one lacks it
            if hit is not None:
                bound[slot] = hit
        return bound

    def explicit_schema(self, bound: Mapping[str, str]) -> dict[str, pa.DataType]:
        """Types pyarrow must enforce while parsing (text stays text, never a guessed timestamp)."""
        return {bound[s]: pa.string() for s in self.text_slots if s in bound}


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "alpaca",
            "sft",
            {
                "instruction": ("instruction",),
                "input": ("input", "context"),
                "response": ("output", "response"),
                "system": ("system",),
                "history": ("history",),
                "instances": ("instances",),
            },
            ("instruction", "input", "response", "system"),
            "instruction/input/output (alpaca, dolly, self-instruct `instances`)",
        ),
        Format(
            "prompts",
            "sft",
            {
                "instruction": ("instruction", "prompt", "question"),
                "input": ("input", "context"),
                "response": ("output", "response"),
                "system": ("system",),
            },
            ("instruction", "input", "response", "system"),
            "instructions that may lack a response, for `distill generate` to answer (kind sft, response '')",
            ("input", "response", "system"),
        ),
        Format(
            "sharegpt",
            "chat",
            {"messages": ("conversations",), "system": ("system",), "tools": ("tools", "functions")},
            ("system",),
            "conversations of {from, value} turns, function_call/observation turns, tools",
        ),
        Format(
            "openai",
            "chat",
            {"messages": ("messages",), "system": ("system",), "tools": ("tools", "functions")},
            ("system",),
            "messages of {role, content, tool_calls} turns, tools",
        ),
        Format(
            "dpo",
            "dpo",
            {
                "prompt": ("prompt",),
                "messages": ("conversations", "messages"),
                "instruction": ("instruction", "question"),
                "input": ("input",),
                "chosen": ("chosen",),
                "rejected": ("rejected",),
                "system": ("system",),
            },
            ("prompt", "instruction", "input", "system"),
            "prompt (or conversations, or instruction/input) with chosen and rejected",
        ),
        Format(
            "kto",
            "kto",
            {
                "prompt": ("prompt",),
                "messages": ("conversations", "messages"),
                "completion": ("completion",),
                "label": ("label", "kto_tag"),
                "system": ("system",),
            },
            ("prompt", "completion", "system"),
            "prompt/completion/label, or conversations with kto_tag",
        ),
        Format(
            "rlvr",
            "rlvr",
            {
                "problem": ("problem", "question", "verification_question"),
                "solution": ("solution",),
                "answer": ("answer", "expected_verification", "final_answer"),
            },
            ("problem", "solution"),
            "problem/question with an answer (GSM8K `#### N` split off)",
        ),
        Format("text", "text", {"text": ("text", "content", "document")}, ("text",), "plain documents"),
    )
}


def detect(record: Mapping[str, Any] | None, where: str) -> tuple[str, str]:
    """Pick a format from the fields of a sample record; return (name, why)."""
    if record is None:
        msg = f"{where}: no JSON object found in the first lines to detect the format from; pass --format"
        raise InputError(msg)
    keys = set(record)

    def turn_keys(name: str) -> set[str]:
        value = record.get(name)
        return set(value[0]) if isinstance(value, list) and value and isinstance(value[0], dict) else set()

    conv = next((k for k in ("conversations", "messages") if k in keys), None)
    rules: list[tuple[bool, str]] = [
        ("chosen" in keys and "rejected" in keys, "dpo"),
        (("kto_tag" in keys and conv is not None) or ("completion" in keys and "label" in keys), "kto"),
        (conv == "messages" and ("role" in turn_keys("messages") or not turn_keys("messages")), "openai"),
        (conv is not None, "sharegpt"),
        ("instruction" in keys and bool(keys & {"output", "response", "instances"}), "alpaca"),
        (
            bool(keys & {"problem", "question", "verification_question"})
            and bool(keys & {"answer", "expected_verification", "final_answer", "solution"}),
            "rlvr",
        ),
        ("instruction" in keys or ("prompt" in keys and not keys & {"completion", "response", "output"}), "prompts"),
        (bool(keys & {"text", "content", "document"}), "text"),
    ]
    for ok, name in rules:
        if ok:
            return name, f"fields {', '.join(sorted(keys)[:8])}"
    msg = (
        f"{where}: cannot detect the format from fields {sorted(keys)}; pass --format "
        f"({'|'.join(FORMATS)}) and --map canonical=source_field"
    )
    raise InputError(msg)


# ---------------------------------------------------------------- checks


@dataclass(slots=True)
class Checks:
    """Ordered row checks; the first that fails names the row's reject reason."""

    items: list[tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]]

    def add(self, cond: pl.Expr, field: str | pl.Expr, reason: str | pl.Expr, detail: str | pl.Expr) -> None:
        lit = lambda v: pl.lit(v) if isinstance(v, str) else v  # noqa: E731
        self.items.append((cond.fill_null(False), lit(field), lit(reason), lit(detail)))

    def columns(self) -> list[pl.Expr]:
        if not self.items:
            none = pl.lit(None, pl.String)
            return [none.alias("_reason"), none.alias("_field"), none.alias("_detail")]
        out = []
        for idx, name in ((2, "_reason"), (1, "_field"), (3, "_detail")):
            expr: Any = pl
            for item in self.items:
                expr = expr.when(item[0]).then(item[idx])
            out.append(expr.otherwise(pl.lit(None, pl.String)).alias(name))
        return out

    def any_failed(self) -> pl.Expr:
        """True where a row fails some check: where `columns()` would give it a reason."""
        return pl.any_horizontal([item[0] for item in self.items]) if self.items else pl.lit(False)


def _is_text_dtype(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Null)


def text_checks(
    df: pl.DataFrame,
    checks: Checks,
    slot: str,
    field: str | pl.Expr,
    *,
    required: bool = True,
    col: pl.Expr | None = None,
) -> None:
    """missing_field / wrong_type / empty_text for one text slot."""
    name = f"__{slot}"
    if name not in df.columns:
        if required:
            checks.add(pl.lit(True), field, "missing_field", "the field is absent")
        return
    expr = pl.col(name) if col is None else col
    if not _is_text_dtype(df.schema[name]):
        checks.add(pl.col(name).is_not_null(), field, "wrong_type", f"expected string, got {df.schema[name]}")
    if required:
        checks.add(expr.is_null(), field, "missing_field", "the field is absent or null")
        checks.add(
            expr.cast(pl.String, strict=False).str.strip_chars() == "",
            field,
            "empty_text",
            "the text is empty or only whitespace",
        )


def _text(df: pl.DataFrame, slot: str) -> pl.Expr:
    name = f"__{slot}"
    if name in df.columns and _is_text_dtype(df.schema[name]):
        return pl.col(name).cast(pl.String)
    return pl.lit(None, pl.String)


def _struct_field(expr: pl.Expr, dtype: pl.DataType, *names: str) -> pl.Expr:
    fields = {f.name for f in dtype.fields} if isinstance(dtype, pl.Struct) else set()
    hit = next((n for n in names if n in fields), None)
    return expr.struct.field(hit) if hit else pl.lit(None, pl.String)


def _json_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A nested value as JSON text (a string stays as it is)."""
    if _is_text_dtype(dtype):
        return expr.cast(pl.String)
    return pl.struct(expr.alias("v")).struct.json_encode().str.strip_prefix('{"v":').str.strip_suffix("}")


# ---------------------------------------------------------------- conversations


def convert_messages(df: pl.DataFrame, src: str) -> pl.DataFrame:
    """Explode `__messages`, map roles and check each turn; return per `_row`: messages, first bad turn."""
    dtype = df.schema["__messages"]
    if dtype == pl.Null:
        return df.select(
            "_row",
            messages=pl.lit(None, pl.List(MSG)),
            _mreason=pl.lit("missing_field"),
            _mfield=pl.lit(src),
            _mdetail=pl.lit("the field is absent or null"),
            _n_assistant=pl.lit(0),
        )
    if not (isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct)):
        return df.select(
            "_row",
            messages=pl.lit(None, pl.List(MSG)),
            _mreason=pl.lit("wrong_type"),
            _mfield=pl.lit(src),
            _mdetail=pl.lit(f"expected a list of turn objects, got {dtype}"),
            _n_assistant=pl.lit(0),
        )
    inner = dtype.inner
    names = {f.name: f.dtype for f in inner.fields}
    role_key = "from" if "from" in names else "role"
    content_key = "value" if "value" in names else "content"
    t = df.select("_row", m=pl.col("__messages"), _turn=pl.int_ranges(0, pl.col("__messages").list.len())).explode(
        ["m", "_turn"]
    )
    raw_role = _struct_field(pl.col("m"), inner, role_key)
    content_dtype = names.get(content_key, pl.Null)
    raw_content = (
        _struct_field(pl.col("m"), inner, content_key) if _is_text_dtype(content_dtype) else pl.lit(None, pl.String)
    )
    calls = (
        _json_text(pl.col("m").struct.field("tool_calls"), names["tool_calls"])
        if "tool_calls" in names
        else pl.lit(None, pl.String)
    )
    is_call_turn = raw_role.is_in(TOOL_CALL_ROLES)
    t = t.with_columns(
        role=raw_role.replace_strict(ROLE_MAP, default=None, return_dtype=pl.String),
        content=pl.when(is_call_turn)
        .then(pl.lit(""))
        .otherwise(raw_content.fill_null(pl.when(calls.is_not_null()).then(pl.lit("")))),
        tool_calls=pl.when(is_call_turn).then(raw_content).otherwise(calls),
        _raw_role=raw_role,
        _raw_content=raw_content,
    )
    turn = pl.format(f"{src}[{{}}]", pl.col("_turn"))
    checks = Checks([])
    checks.add(pl.col("m").is_null(), pl.lit(src), "empty_conversation", "the conversation has no turns")
    checks.add(
        pl.col("_raw_role").is_null(),
        pl.format("{}.{}", turn, pl.lit(role_key)),
        "missing_field",
        "the turn has no role",
    )
    checks.add(
        pl.col("role").is_null(),
        pl.format("{}.{}", turn, pl.lit(role_key)),
        "unknown_role",
        pl.format("expected one of {}, got '{}'", pl.lit("|".join(sorted(ROLE_MAP))), pl.col("_raw_role")),
    )
    if not _is_text_dtype(content_dtype):
        checks.add(
            pl.lit(True),
            pl.format("{}.{}", turn, pl.lit(content_key)),
            "wrong_type",
            f"expected string, got {content_dtype}",
        )
    checks.add(
        pl.col("_raw_content").is_null() & pl.col("tool_calls").is_null(),
        pl.format("{}.{}", turn, pl.lit(content_key)),
        "missing_field",
        "the turn has no content",
    )
    checks.add(
        (pl.col("content").str.strip_chars() == "") & pl.col("tool_calls").is_null(),
        pl.format("{}.{}", turn, pl.lit(content_key)),
        "empty_text",
        "the turn's text is empty",
    )
    t = t.with_columns(checks.columns())
    bad = pl.col("_reason").is_not_null()
    return t.group_by("_row", maintain_order=True).agg(
        messages=pl.struct("role", "content", "tool_calls").filter(pl.col("m").is_not_null()),
        _mreason=pl.col("_reason").filter(bad).first(),
        _mfield=pl.col("_field").filter(bad).first(),
        _mdetail=pl.col("_detail").filter(bad).first(),
        _n_assistant=(pl.col("role") == "assistant").sum(),
    )


def _with_messages(df: pl.DataFrame, src: str) -> pl.DataFrame:
    out = df.join(convert_messages(df, src), on="_row", how="left", maintain_order="left")
    # An empty list explodes to no row at all: such conversations come back without a verdict.
    empty = pl.col("_mreason").is_null() & (pl.col("messages").list.len().fill_null(0) == 0)
    return out.with_columns(
        _mfield=pl.when(empty).then(pl.lit(src)).otherwise(pl.col("_mfield")),
        _mdetail=pl.when(empty).then(pl.lit("the conversation has no turns")).otherwise(pl.col("_mdetail")),
        _n_assistant=pl.col("_n_assistant").fill_null(0),
    ).with_columns(_mreason=pl.when(empty).then(pl.lit("empty_conversation")).otherwise(pl.col("_mreason")))


def _add_message_checks(checks: Checks) -> None:
    checks.add(pl.col("_mreason").is_not_null(), pl.col("_mfield"), pl.col("_mreason"), pl.col("_mdetail"))


def _finish(df: pl.DataFrame, checks: Checks, exprs: dict[str, pl.Expr]) -> pl.DataFrame:
    """Outputs plus `_reason`, `_field`, `_detail`.

    Most pieces have no reject at all: then the conditions are evaluated once and the three reason
    columns are plain nulls, instead of three when/then chains that each walk every condition.
    """
    cols = [e.alias(k) for k, e in exprs.items()]
    out = df.lazy().select("_row", "_line", *cols, _failed=checks.any_failed()).collect()
    if not out["_failed"].any():
        none = pl.lit(None, pl.String)
        return out.select(pl.exclude("_failed"), _reason=none, _field=none, _detail=none)
    # lazy: sub-expressions shared by the chains are computed once
    return df.lazy().select("_row", "_line", *cols, *checks.columns()).collect()


def _history_from_pairs(df: pl.DataFrame) -> pl.Expr:
    """alpaca `history`: [[query, answer], ...] -> user/assistant messages; empty -> null."""
    if "__history" not in df.columns or df.schema["__history"] == pl.Null:
        return pl.lit(None, pl.List(MSG))
    none = pl.lit(None, pl.String)
    msgs = (
        pl.col("__history")
        .list.eval(
            pl.concat_list(
                pl.struct(role=pl.lit("user"), content=pl.element().list.get(0, null_on_oob=True), tool_calls=none),
                pl.struct(
                    role=pl.lit("assistant"), content=pl.element().list.get(1, null_on_oob=True), tool_calls=none
                ),
            )
        )
        .list.eval(pl.element().explode())
    )
    return pl.when(msgs.list.len() > 0).then(msgs)


def _nonempty(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.list.len() > 0).then(expr)


# ---------------------------------------------------------------- converters


def _prompts(df: pl.DataFrame, src: Mapping[str, str]) -> pl.DataFrame:
    """sft rows whose response may be missing or empty (stored as ''): `distill generate` answers them."""
    checks = Checks([])
    text_checks(df, checks, "instruction", src.get("instruction", "instruction"))
    for slot in ("input", "response", "system"):
        text_checks(df, checks, slot, src.get(slot, slot), required=False)
    return _finish(
        df,
        checks,
        {
            "instruction": _text(df, "instruction"),
            "input": _text(df, "input").fill_null(""),
            "response": _text(df, "response").fill_null(""),
            "system": _text(df, "system"),
            "history": pl.lit(None),
        },
    )


def _alpaca(df: pl.DataFrame, src: Mapping[str, str]) -> pl.DataFrame:
    instr_field: str | pl.Expr = src.get("instruction", "instruction")
    resp_field: str | pl.Expr = src.get("response", "output")
    if "__instances" in df.columns:
        dtype = df.schema["__instances"]
        inner = dtype.inner if isinstance(dtype, pl.List) else pl.Null()
        df = df.with_columns(_inst=pl.int_ranges(0, pl.col("__instances").list.len())).explode(["__instances", "_inst"])
        df = df.with_columns(
            __input=_struct_field(pl.col("__instances"), inner, "input"),
            __response=_struct_field(pl.col("__instances"), inner, "output", "response"),
        )
        resp_field = pl.format(f"{src['instances']}[{{}}].output", pl.col("_inst"))
    checks = Checks([])
    if "_inst" in df.columns:
        checks.add(pl.col("_inst").is_null(), src["instances"], "missing_field", "no instances")
    text_checks(df, checks, "instruction", instr_field)
    text_checks(df, checks, "input", src.get("input", "input"), required=False)
    text_checks(df, checks, "response", resp_field)
    text_checks(df, checks, "system", src.get("system", "system"), required=False)
    return _finish(
        df,
        checks,
        {
            "instruction": _text(df, "instruction"),
            "input": _text(df, "input").fill_null(""),
            "response": _text(df, "response"),
            "system": _text(df, "system"),
            "history": _history_from_pairs(df),
        },
    )


def _tools(df: pl.DataFrame) -> pl.Expr:
    if "__tools" not in df.columns:
        return pl.lit(None, pl.String)
    return _json_text(pl.col("__tools"), df.schema["__tools"])


def _chat(df: pl.DataFrame, src: Mapping[str, str]) -> pl.DataFrame:
    checks = Checks([])
    msgs = src.get("messages", "messages")
    if "__messages" not in df.columns:
        checks.add(pl.lit(True), msgs, "missing_field", "the field is absent")
        df = df.with_columns(messages=pl.lit(None, pl.List(MSG)))
    else:
        df = _with_messages(df, msgs)
        _add_message_checks(checks)
        checks.add(pl.col("_n_assistant") == 0, msgs, "no_assistant_turn", "the conversation has no assistant turn")
    text_checks(df, checks, "system", src.get("system", "system"), required=False)
    return _finish(df, checks, {"messages": pl.col("messages"), "tools": _tools(df), "system": _text(df, "system")})


def _response_of(df: pl.DataFrame, slot: str) -> tuple[pl.Expr, str | None]:
    """A preference response given as text, a turn object, or a list of turns (the last one counts)."""
    name = f"__{slot}"
    if name not in df.columns:
        return pl.lit(None, pl.String), None
    dtype = df.schema[name]
    if _is_text_dtype(dtype):
        return pl.col(name).cast(pl.String), None
    if isinstance(dtype, pl.Struct):
        return _struct_field(pl.col(name), dtype, "value", "content"), None
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        return _struct_field(pl.col(name).list.last(), dtype.inner, "value", "content"), None
    return pl.lit(None, pl.String), f"expected text, a turn object or a list of turns, got {dtype}"


def _prompt_side(
    df: pl.DataFrame, src: Mapping[str, str], checks: Checks, *, drop_last_assistant: bool
) -> tuple[pl.DataFrame, pl.Expr, pl.Expr, pl.Expr | None]:
    """(df, prompt, history, completion-from-turns) from prompt text, turns, or instruction + input."""
    none_hist = pl.lit(None, pl.List(MSG))
    if "__prompt" in df.columns:
        text_checks(df, checks, "prompt", src["prompt"])
        return df, _text(df, "prompt"), none_hist, None
    if "__messages" in df.columns:
        df = _with_messages(df, src["messages"])
        _add_message_checks(checks)
        turns = pl.col("messages")
        completion = None
        if drop_last_assistant:
            completion = turns.list.last().struct.field("content")
            checks.add(
                turns.list.last().struct.field("role") != "assistant",
                src["messages"],
                "no_assistant_turn",
                "the last turn must be the assistant's completion",
            )
            turns = turns.list.slice(0, turns.list.len() - 1)
        prompt = turns.list.last().struct.field("content")
        checks.add(prompt.is_null(), src["messages"], "missing_field", "no prompt turn")
        return df, prompt, _nonempty(turns.list.slice(0, turns.list.len() - 1)), completion
    if "__instruction" in df.columns:
        text_checks(df, checks, "instruction", src["instruction"])
        text_checks(df, checks, "input", src.get("input", "input"), required=False)
        inp = _text(df, "input").fill_null("")
        prompt = (
            pl.when(inp == "")
            .then(_text(df, "instruction"))
            .otherwise(pl.concat_str(_text(df, "instruction"), pl.lit("\n\n"), inp))
        )
        return df, prompt, none_hist, None
    checks.add(pl.lit(True), "prompt", "missing_field", "no prompt, conversations or instruction field")
    return df, pl.lit(None, pl.String), none_hist, None


def _pair_checks(df: pl.DataFrame, checks: Checks, slot: str, field: str, expr: pl.Expr, err: str | None) -> None:
    if err:
        checks.add(pl.col(f"__{slot}").is_not_null(), field, "wrong_type", err)
    checks.add(expr.is_null(), field, "missing_field", "the field is absent or null")
    checks.add(expr.str.strip_chars() == "", field, "empty_text", "the text is empty or only whitespace")


def _dpo(df: pl.DataFrame, src: Mapping[str, str]) -> pl.DataFrame:
    checks = Checks([])
    df, prompt, history, _ = _prompt_side(df, src, checks, drop_last_assistant=False)
    chosen, c_err = _response_of(df, "chosen")
    rejected, r_err = _response_of(df, "rejected")
    _pair_checks(df, checks, "chosen", src.get("chosen", "chosen"), chosen, c_err)
    _pair_checks(df, checks, "rejected", src.get("rejected", "rejected"), rejected, r_err)
    checks.add(
        chosen == rejected,
        src.get("rejected", "rejected"),
        "chosen_equals_rejected",
        "chosen and rejected are the same text",
    )
    return _finish(
        df,
        checks,
        {"prompt": prompt, "chosen": chosen, "rejected": rejected, "system": _text(df, "system"), "history": history},
    )


def _kto(df: pl.DataFrame, src: Mapping[str, str]) -> pl.DataFrame:
    checks = Checks([])
    from_turns = "__prompt" not in df.columns and "__completion" not in df.columns and "__messages" in df.columns
    df, prompt, history, turn_completion = _prompt_side(df, src, checks, drop_last_assistant=from_turns)
    if turn_completion is not None:
        completion = turn_completion
    else:
        text_checks(df, checks, "completion", src.get("completion", "completion"))
        completion = _text(df, "completion")
    label_field = src.get("label", "label")
    if "__label" not in df.columns:
        checks.add(pl.lit(True), label_field, "missing_field", "the field is absent")
        label = pl.lit(None, pl.Boolean)
    else:
        dtype = df.schema["__label"]
        if dtype == pl.Boolean:
            label = pl.col("__label")
        elif _is_text_dtype(dtype):
            label = (
                pl.col("__label")
                .cast(pl.String)
                .str.to_lowercase()
                .replace_strict(
                    {"true": True, "false": False, "1": True, "0": False}, default=None, return_dtype=pl.Boolean
                )
            )
        elif dtype.is_integer():
            label = pl.when(pl.col("__label").is_in([0, 1])).then(pl.col("__label") == 1)
        else:
            label = pl.lit(None, pl.Boolean)
        checks.add(pl.col("__label").is_null(), label_field, "missing_field", "the field is absent or null")
        checks.add(
            label.is_null(),
            label_field,
            "invalid_label",
            pl.format("expected true or false, got {}", pl.col("__label").cast(pl.String, strict=False)),
        )
    return _finish(
        df,
        checks,
        {"prompt": prompt, "completion": completion, "label": label, "system": _text(df, "system"), "history": history},
    )


_BOXED = r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}"


def _rlvr(df: pl.DataFrame, src: Mapping[str, str]) -> pl.DataFrame:
    checks = Checks([])
    text_checks(df, checks, "problem", src.get("problem", "problem"))
    text_checks(df, checks, "solution", src.get("solution", "solution"), required=False)
    solution = _text(df, "solution")
    if "__answer" in df.columns:
        dtype = df.schema["__answer"]
        raw = (
            pl.col("__answer").cast(pl.String)
            if (_is_text_dtype(dtype) or dtype.is_numeric() or dtype == pl.Boolean)
            else _json_text(pl.col("__answer"), dtype)
        )
        # GSM8K: "<worked solution>\n#### 72" when the row has no solution of its own. The solution is
        # what precedes the first "####", the answer what follows the last one (of a longer run of '#',
        # the last four: a literal split leaves the run's remainder, hence strip_chars_start("#")).
        # Plain splits, not regexes: several times faster on long texts.
        split = raw.str.contains("####", literal=True) & solution.is_null()
        df = df.with_columns(_pieces=pl.when(split).then(raw.str.split("####")))
        pieces = pl.col("_pieces")
        solution = pl.when(split).then(pieces.list.first().str.strip_chars()).otherwise(solution)
        answer = pl.when(split).then(pieces.list.last().str.strip_chars_start("#").str.strip_chars()).otherwise(raw)
    else:
        answer = solution.str.extract_all(_BOXED).list.last().str.extract(_BOXED, 1)
    # materialized once: the checks below and the output would each evaluate the expressions again
    df = df.with_columns(_solution_out=solution, _answer_out=answer)
    solution, answer = pl.col("_solution_out"), pl.col("_answer_out")
    answer_field = src.get("answer", src.get("solution", "answer"))
    checks.add(
        answer.is_null(),
        answer_field,
        "missing_field",
        "no answer (field absent, null, or no \\boxed{} in the solution)",
    )
    checks.add(answer.str.strip_chars() == "", answer_field, "empty_text", "the answer is empty")
    return _finish(df, checks, {"problem": _text(df, "problem"), "solution": solution, "answer": answer})


def _text_format(df: pl.DataFrame, src: Mapping[str, str]) -> pl.DataFrame:
    checks = Checks([])
    text_checks(df, checks, "text", src.get("text", "text"))
    return _finish(df, checks, {"text": _text(df, "text")})


CONVERTERS: dict[str, Callable[[pl.DataFrame, Mapping[str, str]], pl.DataFrame]] = {
    "alpaca": _alpaca,
    "prompts": _prompts,
    "sharegpt": _chat,
    "openai": _chat,
    "dpo": _dpo,
    "kto": _kto,
    "rlvr": _rlvr,
    "text": _text_format,
}


def convert(fmt: Format, df: pl.DataFrame, bound: Mapping[str, str]) -> pl.DataFrame:
    """Rows of one piece (slots renamed `__<slot>`, plus `_row`, `_line`) -> kind fields and reasons."""
    return CONVERTERS[fmt.name](df, bound)
