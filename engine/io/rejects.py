"""The rejects table: one row per input row that could not become a canonical record."""

from __future__ import annotations

import polars as pl

REJECT_SCHEMA = {
    "reject_source": pl.String,
    "reject_line": pl.Int64,
    "reject_field": pl.String,
    "reject_reason": pl.String,
    "reject_detail": pl.String,
    "reject_raw": pl.String,
}

# Stable reason codes, documented in the README.
REASONS = (
    "invalid_json",  # the line or element is not valid JSON
    "invalid_utf8",  # undecodable bytes
    "not_an_object",  # valid JSON, but not an object
    "invalid_csv",  # a CSV row with the wrong number of fields
    "missing_field",  # a required field is absent or null
    "wrong_type",  # a field has the wrong JSON type (e.g. a number where text is expected)
    "empty_text",  # a required text field is empty or only whitespace
    "unknown_role",  # a conversation turn's role is not one we can map
    "empty_conversation",  # a conversation with no turns
    "no_assistant_turn",  # a conversation with no assistant turn
    "chosen_equals_rejected",  # a preference pair whose two responses are the same
    "invalid_label",  # a KTO label that is not a boolean
)


def reject_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Build a rejects frame from a few Python rows (parse failures are rare by nature)."""
    return pl.DataFrame(rows, schema=REJECT_SCHEMA)
