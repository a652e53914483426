"""Where recorded outcomes live: shared data beside the checkout, or a sample.

The full sets stay outside the project (``../shared/data/<name>``); a small
deterministic sample of each ships in the package (``langchain_metallm/data``) so
a bare clone or wheel still works.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
_SHARED = _PACKAGE_DIR.parent.parent / "shared" / "data"
_VENDORED = _PACKAGE_DIR / "data"
"""The packaged samples, each laid out like a shared data set folder."""


def _prefer_shared(name: str, shared_file: str, sample_file: str) -> Path:
    shared = _SHARED / name / shared_file
    return shared if shared.is_file() else _VENDORED / name / sample_file


def default_gsm8k_path() -> Path:
    """``../shared/data/gsm8k2/all.jsonl`` beside the repo root, else the sample."""
    return _prefer_shared("gsm8k2", "all.jsonl", "sample.jsonl")


def default_gsm8k_models_path() -> Path:
    """The ``models.json`` (names, list prices) matching :func:`default_gsm8k_path`."""
    return _prefer_shared("gsm8k2", "models.json", "models.json")


def default_llmrouter9_path() -> Path:
    """``../shared/data/llmrouter9/train.jsonl`` beside the repo root (5,608 rows,
    9 models, 14 tasks, scores only), else the packaged stratified sample."""
    return _prefer_shared("llmrouter9", "train.jsonl", "sample.jsonl")


def default_llmrouter9_models_path() -> Path:
    """The ``models.json`` matching :func:`default_llmrouter9_path`."""
    return _prefer_shared("llmrouter9", "models.json", "models.json")
