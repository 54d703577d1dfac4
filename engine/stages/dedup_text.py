"""What dedup compares: one normalised string per row, built from configurable fields.

Defaults per kind: sft instruction + input + response; chat the whole conversation; dpo prompt +
chosen; kto prompt + completion; rlvr problem + solution (or answer); text the text. `fields` names
canonical columns to use instead, for every kind (`messages` stands for the whole conversation).
Normalisation: NFKC, lower case, whitespace collapsed to single spaces, optionally punctuation removed,
exactly as the Polars expressions of `key_text_reference` (the tests' oracle). The kernels do it as they
read each row (`KeyRows`); only rows with a character NFKC or lower case may change take Python's
Unicode steps first.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

import numpy as np
import polars as pl
import pyarrow as pa

from engine.errors import ConfigError, did_you_mean
from engine.schema import dataset_polars_schema
from engine.stages.hash_kernels import string_buffers
from engine.stages.string_views import TextRows, text_rows
from engine.stages.text_kernels import non_ascii, normalize_keys, rows_using
from engine.stages.views import turns_text


@dataclass(frozen=True, slots=True, kw_only=True)
class TextKeyConfig:
    fields: tuple[str, ...] = ()
    nfkc: bool = True
    casefold: bool = True
    collapse_whitespace: bool = True
    strip_punctuation: bool = False

    def __post_init__(self) -> None:
        names = [n for n, dtype in dataset_polars_schema().items() if dtype == pl.String or n == "messages"]
        for f in self.fields:
            if f not in names:
                msg = f"dedup fields: {f!r} is not a text column{did_you_mean(f, names)} (text columns: {', '.join(names)})"
                raise ConfigError(msg)


def _column_text(name: str) -> pl.Expr:
    return turns_text(pl.col("messages")) if name == "messages" else pl.col(name)


def _join(*names: str) -> pl.Expr:
    return pl.concat_str([_column_text(n) for n in names], separator="\n", ignore_nulls=True)


def raw_text(fields: tuple[str, ...] = ()) -> pl.Expr:
    """The row's dedup text before normalisation."""
    if fields:
        return _join(*fields)
    kind = pl.col("kind")
    return (
        pl.when(kind == "sft")
        .then(_join("instruction", "input", "response"))
        .when(kind == "chat")
        .then(_join("messages"))
        .when(kind == "dpo")
        .then(_join("prompt", "chosen"))
        .when(kind == "kto")
        .then(_join("prompt", "completion"))
        .when(kind == "rlvr")
        .then(pl.concat_str([pl.col("problem"), pl.coalesce("solution", "answer")], separator="\n", ignore_nulls=True))
        .otherwise(pl.col("text"))
    )


def _polars_normalize(text: pl.Expr, cfg: TextKeyConfig) -> pl.Expr:
    """The reference normalisation, in Polars (Unicode-aware, ~24 us per 100-word row)."""
    if cfg.nfkc:
        text = text.str.normalize("NFKC")
    if cfg.casefold:
        text = text.str.to_lowercase()
    if cfg.strip_punctuation:
        text = text.str.replace_all(r"[^\w\s]", "")
    if cfg.collapse_whitespace:
        text = text.str.replace_all(r"\s+", " ").str.strip_chars(" ")
    return text


# `_composes_after()` under Unicode 14.0 (Python 3.11's unicodedata), as inclusive ranges: scanning the
# decompositions costs ~10 ms of the first dedup batch (tests/stages/test_dedup_text.py checks the table).
_COMPOSES_AFTER_14 = (
    (0x300, 0x304), (0x306, 0x30C), (0x30F, 0x30F), (0x311, 0x311), (0x313, 0x314), (0x31B, 0x31B),
    (0x323, 0x328), (0x32D, 0x32E), (0x330, 0x331), (0x338, 0x338), (0x342, 0x342), (0x345, 0x345),
    (0x5B4, 0x5B4), (0x5B7, 0x5B9), (0x5BC, 0x5BC), (0x5BF, 0x5BF), (0x5C1, 0x5C2), (0x653, 0x655),
    (0x93C, 0x93C), (0x9BC, 0x9BC), (0x9BE, 0x9BE), (0x9D7, 0x9D7), (0xA3C, 0xA3C), (0xB3C, 0xB3C),
    (0xB3E, 0xB3E), (0xB56, 0xB57), (0xBBE, 0xBBE), (0xBD7, 0xBD7), (0xC56, 0xC56), (0xCC2, 0xCC2),
    (0xCD5, 0xCD6), (0xD3E, 0xD3E), (0xD57, 0xD57), (0xDCA, 0xDCA), (0xDCF, 0xDCF), (0xDDF, 0xDDF),
    (0xF72, 0xF72), (0xF74, 0xF74), (0xF80, 0xF80), (0xFB5, 0xFB5), (0xFB7, 0xFB7), (0x102E, 0x102E),
    (0x1161, 0x1175), (0x11A8, 0x11C2), (0x1B35, 0x1B35), (0x3099, 0x309A), (0x110BA, 0x110BA),
    (0x11127, 0x11127), (0x1133E, 0x1133E), (0x11357, 0x11357), (0x114B0, 0x114B0), (0x114BA, 0x114BA),
    (0x114BD, 0x114BD), (0x115AF, 0x115AF), (0x11930, 0x11930), (0x1D165, 0x1D165), (0x1D16E, 0x1D172),
)  # fmt: skip


def scan_composes_after() -> frozenset[int]:
    """Code points that canonical composition can merge into the character before them (NFC_QC=Maybe),
    from the running Python's Unicode data.

    Every canonical decomposition lies below U+2FA20; CJK ideographs and Hangul syllables (whose
    second parts are the V and T jamo, added here) are skipped.
    """
    out = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for cp in chain(range(0xC0, 0x3400), range(0xA000, 0xAC00), range(0xD7A4, 0x20000), range(0x2F800, 0x2FA20)):
        parts = unicodedata.decomposition(chr(cp)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            out.add(int(parts[1], 16))
    return frozenset(out)


@lru_cache(maxsize=1)
def _composes_after() -> frozenset[int]:
    """`scan_composes_after()`: the table for Unicode 14.0, else scanned (~10 ms, once per process)."""
    if unicodedata.unidata_version == "14.0.0":
        return frozenset(cp for lo, hi in _COMPOSES_AFTER_14 for cp in range(lo, hi + 1))
    return scan_composes_after()


_STABLE: dict[tuple[int, bool, bool], bool] = {}


def _stable(cp: int, nfkc: bool, lower: bool) -> bool:
    """Whether a character is left as is by NFKC and by lower case in any context, so that a row whose
    other characters are ASCII or stable too needs neither step.

    NFKC: the character is its own NFKC, a starter, and neither it nor the start of its decomposition
    can compose with a character before it (then no decomposition, reordering or composition in the
    row changes anything). Lower case: `str.lower` maps it to itself (only final sigma depends on
    context, and capital sigma is not stable).
    """
    key = (cp, nfkc, lower)
    stable = _STABLE.get(key)
    if stable is None:
        ch = chr(cp)
        stable = not lower or ch.lower() == ch
        if nfkc and stable:
            after = _composes_after()
            stable = (unicodedata.normalize("NFKC", ch) == ch and unicodedata.combining(ch) == 0
                      and cp not in after and ord(unicodedata.normalize("NFD", ch)[0]) not in after)  # fmt: skip
        _STABLE[key] = stable
    return stable


def _unstable(cps: np.ndarray, nfkc: bool, lower: bool) -> np.ndarray:
    """A mark per code point (uint8, 0x110000) on those of `cps` that NFKC or lower case may change."""
    marked = np.zeros(0x110000, dtype=np.uint8)
    marked[[cp for cp in cps.tolist() if not _stable(cp, nfkc, lower)]] = 1
    return marked


@dataclass(frozen=True, slots=True)
class KeyRows:
    """Each row's dedup text as the key kernels read it, before its byte-level normalisation.

    A row is its raw bytes, read in place from Polars' string views, or for a row with a character that
    NFKC or lower case may change (`_stable`) its text after the Unicode steps, done here in Python
    (`prepared[r]` indexes `prep_offsets`). The kernels finish the normalisation as they read each row
    into scratch memory (ASCII lower case and punctuation, whitespace; `text_kernels.normalize_span`),
    so the normalised text of every row is never built: for MinHash that was as slow as the MinHash itself.
    """

    rows: TextRows
    prepared: np.ndarray  # int64 per row: its prepared text, or -1 for the raw bytes
    prep_offsets: np.ndarray
    prep_data: np.ndarray
    lower: bool
    strip_punctuation: bool
    collapse: bool
    owner: object

    @property
    def args(self) -> tuple:
        """The tuple the kernels take (`engine.stages.text_kernels.key_source` unpacks it). It points into
        memory this object holds: keep the object alive while a kernel runs. Its arrays are read-only
        views whatever they were made from, so numba sees one signature (each one costs a cache load)."""
        r = self.rows
        arrays = (r.addresses, r.sizes, r.buffer, r.start, r.end, self.prepared, self.prep_offsets, self.prep_data)
        return (*map(_read_only, arrays), self.lower, self.strip_punctuation, self.collapse)


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def key_rows(text: pl.Series, cfg: TextKeyConfig) -> KeyRows:
    """The rows of raw dedup text (nulls as empty strings) ready for the key kernels."""
    rows = text_rows(text)
    prepared = np.full(len(text), -1, dtype=np.int64)
    prep_offsets, prep_data, owner = np.zeros(1, np.int64), np.zeros(0, np.uint8), None
    if cfg.nfkc or cfg.casefold or cfg.strip_punctuation:
        view = (rows.addresses, rows.sizes, rows.buffer, rows.start, rows.end)
        has_wide, seen = non_ascii(*view)
        wide = np.flatnonzero(has_wide)
        if len(wide) and not cfg.strip_punctuation:
            wide = wide[rows_using(*view, wide, _unstable(np.flatnonzero(seen), cfg.nfkc, cfg.casefold))]
        if len(wide):
            sub = text.gather(wide)
            if cfg.nfkc or cfg.casefold:
                # A comprehension over the non-ASCII rows only: CPython's NFKC (quick-check fast path) and
                # str.lower measured 3x and 2x faster than Polars' str.normalize and str.to_lowercase, with
                # the same results (full case mapping, final sigma; tests/stages/test_dedup_text.py).
                values = [t or "" for t in sub.to_list()]
                if cfg.nfkc:
                    values = [unicodedata.normalize("NFKC", t) for t in values]
                if cfg.casefold:
                    values = [t.lower() for t in values]
                sub = pl.Series(sub.name, values, dtype=pl.String)
            if cfg.strip_punctuation:
                sub = sub.str.replace_all(r"[^\w\s]", "")
            owner = sub.fill_null("").to_arrow()
            prep_offsets, prep_data = string_buffers(owner)
            prepared[wide] = np.arange(len(wide), dtype=np.int64)
    return KeyRows(rows, prepared, prep_offsets, prep_data, cfg.casefold, cfg.strip_punctuation,
                   cfg.collapse_whitespace, owner)  # fmt: skip


def normalize(text: pl.Series, cfg: TextKeyConfig) -> pl.Series:
    """`_polars_normalize`'s result, faster: Python's Unicode steps only on rows with a character they may
    change, then one numba pass over every row's bytes (`KeyRows`)."""
    if not (cfg.nfkc or cfg.casefold or cfg.strip_punctuation or cfg.collapse_whitespace):
        return text.fill_null("")
    keys = key_rows(text, cfg)  # holds the memory keys.args points into
    offsets, data = normalize_keys(keys.args)
    arr = pa.LargeStringArray.from_buffers(len(text), pa.py_buffer(offsets), pa.py_buffer(data))
    return pl.Series(text.name, arr, dtype=pl.String)


def key_text(cfg: TextKeyConfig) -> pl.Expr:
    """The normalised dedup text (never null: a row with none of the fields gives the empty string)."""
    return raw_text(cfg.fields).map_batches(lambda s: normalize(s, cfg), return_dtype=pl.String, is_elementwise=True)


def key_text_reference(cfg: TextKeyConfig) -> pl.Expr:
    """`key_text` in plain Polars expressions: the oracle the fast path is tested against."""
    return _polars_normalize(raw_text(cfg.fields).fill_null(""), cfg)
