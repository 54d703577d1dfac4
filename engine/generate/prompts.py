"""Prompt templates: one text file per domain in `prompts/`, filled with `string.Template`.

`$`-placeholders (not braces) so the JSON examples in the templates need no escaping. A rejected
answer is retried with `STRICT`, which repeats the reason and asks for bare JSON.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template

from engine.errors import ConfigError, did_you_mean

PROMPTS = Path(__file__).with_name("prompts")
DOMAINS = ("general", "medical", "legal", "technical", "financial", "scientific")
ROW_DOMAIN = "row"
"""`--domain row`: each row's own `domain` picks its template (`general` when no template has its name)."""
STRICT = (
    "Your previous answer was rejected: {reason}. Reply again with only the JSON object described above: "
    "no prose, no code fence, every field present, difficulty one of easy, medium, hard."
)

STRICT_RESPONSE = (
    "Your previous answer was rejected: {reason}. Reply again with the response text only: "
    "no preamble, no JSON, not empty."
)


def row_template_name(domain: str | None) -> str:
    """The Q&A template a row of this domain gets under `--domain row`."""
    return domain if domain in DOMAINS else "general"


def context_block(text: str | None, label: str) -> str:
    """An optional quoted block (input, source passage) for the respond/regenerate templates."""
    return f'\n{label}:\n"""\n{text}\n"""\n' if text else ""


@cache
def template(name: str) -> Template:
    """The template `prompts/<name>.txt`; ConfigError with a did-you-mean for an unknown domain."""
    path = PROMPTS / f"{name}.txt"
    if name == ROW_DOMAIN:
        return template("general")
    if not path.is_file():
        msg = f"--domain {name!r}: no prompt template{did_you_mean(name, DOMAINS)} (known: {', '.join(DOMAINS)})"
        raise ConfigError(msg)
    return Template(path.read_text(encoding="utf-8"))
