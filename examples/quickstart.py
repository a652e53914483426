"""Route GSM8K questions between a cheap and a strong model, and learn online.

Both children are real ``ChatOpenAI`` clients talking HTTP to a local replay
server that answers with what Mixtral-8x7B and GPT-4 really answered
(recorded by RouteLLM). Each answer is graded against the gold number and the
grade is fed back through a ``MetaLLMFeedbackHandler``.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from typing import Any

from langchain_openai import ChatOpenAI

from langchain_metallm import MetaLLMFeedbackHandler, MetaLLMRouterChatModel
from langchain_metallm.testing import ReplayServer, default_gsm8k_path

CHEAP, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"


def final_number(text: str) -> str | None:
    """The last number in an answer, the way GSM8K answers are graded."""
    numbers = re.findall(r"-?\d[\d,]*\.?\d*", text)
    return numbers[-1].replace(",", "").rstrip(".") if numbers else None


def main(limit: int = 300, cost_weight: float = 0.3) -> dict[str, Any]:
    rows = [json.loads(line) for line in default_gsm8k_path().open()][:limit]
    gold = {row["prompt"]: row["answer"] for row in rows}
    with ReplayServer() as server:

        def child(model: str) -> ChatOpenAI:
            return ChatOpenAI(model=model, base_url=server.base_url, api_key="replay")

        router = MetaLLMRouterChatModel(
            models={"mixtral": child(CHEAP), "gpt-4": child(STRONG)},
            costs={"mixtral": 0.6, "gpt-4": 20.0},  # $/Mtok, mean of in and out
            cost_weight=cost_weight,
            alpha=0.3,
        )

        def grade(messages: Any, generation: Any) -> float:
            return float(final_number(generation.text) == gold[messages[-1].text])

        handler = MetaLLMFeedbackHandler(router, grade)
        picks: Counter[str] = Counter()
        correct = 0
        answers = router.batch(
            [row["prompt"] for row in rows], config={"callbacks": [handler]}
        )
        for row, answer in zip(rows, answers, strict=True):
            picks[answer.response_metadata["metallm"]["model"]] += 1
            correct += final_number(answer.text) == row["answer"]
    summary = {
        "queries": len(rows),
        "router_accuracy": correct / len(rows),
        "router_calls": dict(picks),
        "always_mixtral_accuracy": sum(r["scores"][CHEAP] for r in rows) / len(rows),
        "always_gpt4_accuracy": sum(r["scores"][STRONG] for r in rows) / len(rows),
    }
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--cost-weight", type=float, default=0.3)
    args = parser.parse_args()
    main(args.limit, args.cost_weight)
