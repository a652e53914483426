"""What a LangChain LLM-cache hit means for the router: an answer, not a decision.

The router opts out of LangChain's global LLM cache by default (``cache=False``):
identical prompts keep reaching the policy, so it keeps learning, while each
child still uses the global cache for its own provider calls. With ``cache=True``
(or a ``BaseCache``) a hit returns the stored answer without calling any child, so
there is no routing decision to reward: the hit gets its own run id and
``response_metadata["metallm"]["cached"] = True``, and feedback on it is refused.
"""

from __future__ import annotations

from langchain_core.outputs import ChatGeneration, ChatResult

CACHE_HIT = (
    "was answered from the LLM cache: no child was called, so there is no "
    "routing decision to reward (feedback the original run instead)"
)
"""Why feedback on a cache hit is refused."""


def as_cache_hit(result: ChatResult, run_id: str) -> ChatResult | None:
    """``result`` relabelled as the cache hit of run ``run_id``, or None if it is
    this run's own fresh answer."""
    generations = []
    for generation in result.generations:
        metadata = generation.message.response_metadata.get("metallm")
        if not isinstance(metadata, dict) or metadata.get("run_id") == run_id:
            return None
        message = generation.message.model_copy(
            update={
                "response_metadata": {
                    **generation.message.response_metadata,
                    "metallm": {
                        **metadata,
                        "run_id": run_id,
                        "cached": True,
                        "attempts": [],
                    },
                }
            }
        )
        generations.append(ChatGeneration(message=message))
    return ChatResult(generations=generations)
