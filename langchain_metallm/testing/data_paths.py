"""Where the GSM8K recorded answers live: shared data beside the checkout, or a sample.

The full set stays outside the project (``../shared/data/gsm8k2``); a small
deterministic sample ships in the package so a bare clone or wheel still works.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_SHARED_GSM8K = _PACKAGE_DIR.parent.parent / "shared" / "data" / "gsm8k2"
_VENDORED = _PACKAGE_DIR / "data" / "gsm8k2"
"""The packaged sample, laid out like a shared data set folder."""


def default_gsm8k_path() -> Path:
    """``../shared/data/gsm8k2/all.jsonl`` beside the repo root, else the sample."""
    shared = _SHARED_GSM8K / "all.jsonl"
    return shared if shared.is_file() else _VENDORED / "sample.jsonl"


def default_gsm8k_models_path() -> Path:
    """The ``models.json`` (names, list prices) matching :func:`default_gsm8k_path`."""
    shared = _SHARED_GSM8K / "models.json"
    return shared if shared.is_file() else _VENDORED / "models.json"
