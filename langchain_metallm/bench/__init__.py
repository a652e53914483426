"""Routing benchmark on recorded LLM outcomes: baselines, LinUCB, cost curves."""

from langchain_metallm.bench.data import Outcomes, load_outcomes
from langchain_metallm.bench.report import BenchmarkResult
from langchain_metallm.bench.runner import DEFAULT_COST_WEIGHTS, run_benchmark

__all__ = [
    "DEFAULT_COST_WEIGHTS",
    "BenchmarkResult",
    "Outcomes",
    "load_outcomes",
    "run_benchmark",
]
