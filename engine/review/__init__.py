"""The review room (layer 5): a Streamlit app where a person labels rows; `distill review DIR` serves it.

`rows.py` holds every query and save (no Streamlit, so tests drive it alone); `app.py` is the Streamlit
script. Nothing here imports Streamlit at import time: the CLI checks the dataset and finds `APP` without it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine.errors import ConfigError
from engine.store.dataset import open_dataset

APP: Path = Path(__file__).resolve().with_name("app.py")
"""The Streamlit script, run as `streamlit run APP -- DIR`."""


def check_review(path: str) -> int:
    """Check, before any server starts, that `path` is a dataset and Streamlit is installed; returns its rows.

    A bad path is then one `Error:` line from the CLI instead of a traceback inside the browser page.
    """
    ds = open_dataset(path)
    if importlib.util.find_spec("streamlit") is None:
        msg = "distill review needs Streamlit, which is not installed; pip install -e '.[review]'"
        raise ConfigError(msg)
    return sum(p["rows"] for p in ds.manifest["partitions"])
