"""A canonical row as one neutral conversation (turns + system), the common source of every chat format.

- sft: history + user(instruction, blank line, input) + assistant(response)
- rlvr: user(problem) + assistant(solution, "\\n#### ", answer), GSM8K's convention, so the final
  answer stays extractable from the trained model's output; the answer alone when there is no solution
- kto: history + user(prompt) + assistant(completion); dpo: history + user(prompt), the pair apart
- chat: the messages as they are
"""

from __future__ import annotations

import polars as pl

from engine.stages.views import prompt_text

MSG = pl.Struct({"role": pl.String, "content": pl.String, "tool_calls": pl.String})
NO_TURNS = pl.lit([], dtype=pl.List(MSG))


def message(role: str, content: pl.Expr) -> pl.Expr:
    return pl.struct(role=pl.lit(role), content=content, tool_calls=pl.lit(None, pl.String))


def rlvr_target() -> pl.Expr:
    """The text an rlvr row trains on as SFT: worked solution, then `#### answer`."""
    sol = pl.col("solution")
    return (
        pl.when(sol.is_not_null() & (sol.str.strip_chars() != ""))
        .then(pl.concat_str(sol, pl.lit("\n#### "), pl.col("answer")))
        .otherwise(pl.col("answer"))
    )


def target() -> pl.Expr:
    """The single answer of an sft, rlvr or kto row (null for other kinds)."""
    kind = pl.col("kind")
    return (
        pl.when(kind == "sft")
        .then(pl.col("response"))
        .when(kind == "rlvr")
        .then(rlvr_target())
        .when(kind == "kto")
        .then(pl.col("completion"))
        .otherwise(pl.lit(None, pl.String))
    )


def turns() -> pl.Expr:
    """Every turn of the row as canonical messages (a dpo row ends on the user's prompt)."""
    kind = pl.col("kind")
    hist = pl.col("history").fill_null(NO_TURNS)
    ask = message("user", prompt_text())
    return (
        pl.when(kind == "chat")
        .then(pl.col("messages"))
        .when(kind == "dpo")
        .then(pl.concat_list(hist, ask))
        .otherwise(pl.concat_list(hist, ask, message("assistant", target())))
        .alias("turns")
    )


def with_system_turn(turns_: pl.Expr) -> pl.Expr:
    """Put the `system` column in front as a system turn, unless the turns already open with one."""
    first_role = turns_.list.first().struct.field("role")
    sys = pl.col("system")
    return (
        pl.when(sys.is_not_null() & (sys != "") & (first_role.fill_null("") != "system"))
        .then(pl.concat_list(message("system", sys), turns_))
        .otherwise(turns_)
    )


def split_leading_system(turns_: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(turns without a leading system turn, the system prompt from that turn or the `system` column)."""
    first = turns_.list.first()
    leads = first.struct.field("role").fill_null("") == "system"
    rest = pl.when(leads).then(turns_.list.slice(1)).otherwise(turns_)
    system = pl.when(leads).then(first.struct.field("content")).otherwise(pl.col("system"))
    return rest, system


def alternates(turns_: pl.Expr) -> pl.Expr:
    """True when the turns are user/assistant pairs (even length, user first, no tool calls)."""
    e = pl.element()
    want = pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("user")).otherwise(pl.lit("assistant"))
    ok = turns_.list.eval(((e.struct.field("role") == want) & e.struct.field("tool_calls").is_null()).all())
    return ok.list.first().fill_null(True) & (turns_.list.len().fill_null(0) % 2 == 0)


def pairs(turns_: pl.Expr) -> pl.Expr:
    """Alternating user/assistant turns as alpaca `history` pairs [[query, answer], ...]; null when none.

    Rows failing `alternates` must be filtered out first (an odd last turn is cut off here).
    """
    n = turns_.list.len()
    contents = turns_.list.eval(pl.element().struct.field("content")).list.head(n - n % 2)
    paired = contents.list.eval(pl.element().reshape((-1, 2))).cast(pl.List(pl.List(pl.String)))
    return pl.when(turns_.list.len() > 0).then(paired)
