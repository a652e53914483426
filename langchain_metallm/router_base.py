"""``RouterBase``: the ``BaseChatModel`` methods a router overrides, and why.

* ``stream``/``astream`` and ``_generate_with_cache``: langchain-core calls
  ``_stream`` without its run manager on some paths, yet a routed stream needs its
  run id and the child's callbacks; these hand them over, and make the router's
  run the caller its children see in the config context (``stream_run``).
* ``_generate_with_cache``: an LLM-cache hit is an answer without a decision; it
  is relabelled and its feedback refused (``llm_cache``).
* ``batch``/``abatch``: every query of a batch is embedded in one call before the
  items are routed one by one.
* ``bind_tools``, ``with_structured_output``: bound on the router, applied to
  whichever child answers (``structured_output``).
* ``_generate``, ``_agenerate``, ``_stream``, ``_astream``: every call runs
  through ``routed_call.RoutedCalls`` (``_calls``), with the options of the
  handle it was made on (``_call_options``, which the router defines).

It also shows what the router learned: ``report`` (one HTML file), ``summary``
(text) and ``_repr_html_`` (a notebook's view), all drawn by ``report``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import PrivateAttr

from langchain_metallm import report as reports
from langchain_metallm import stream_run
from langchain_metallm.core.persistence import StrPath
from langchain_metallm.llm_cache import CACHE_HIT, as_cache_hit
from langchain_metallm.routed_call import CallOptions, RoutedCalls, query_text
from langchain_metallm.structured_output import (
    STRUCTURED_OUTPUT,
    StructuredOutput,
    unpacker,
)


class RouterBase(BaseChatModel):
    """A chat model whose ``_stream`` always knows its run, whose cache hits are
    marked as such, whose batches are embedded in one call, and whose calls are
    routed."""

    _calls: RoutedCalls = PrivateAttr()

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the chosen child's answer; the last chunk carries the decision."""
        config, link = stream_run.stream_config(config, CallbackManager)
        caller = stream_run.caller_config(link, config)
        chunks = super().stream(input, config, stop=stop, **kwargs)
        with stream_run.handing_over(link), stream_run.as_caller(caller):
            chunk = next(chunks, None)  # handing over until _stream has taken it
        while chunk is not None:
            yield chunk
            with stream_run.as_caller(caller):  # every step may call a child
                chunk = next(chunks, None)

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Async twin of ``stream``."""
        config, link = stream_run.stream_config(config, AsyncCallbackManager)
        caller = stream_run.caller_config(link, config)
        chunks = super().astream(input, config, stop=stop, **kwargs)
        with stream_run.handing_over(link), stream_run.as_caller(caller):
            chunk = await anext(chunks, None)  # handing over until _astream took it
        while chunk is not None:
            yield chunk
            with stream_run.as_caller(caller):  # every step may call a child
                chunk = await anext(chunks, None)

    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # When langchain-core streams under invoke, ``_stream`` gets no run manager.
        link = stream_run.link_of(run_manager)
        caller = stream_run.caller_config(link)
        with stream_run.handing_over(link), stream_run.as_caller(caller):
            result = super()._generate_with_cache(messages, stop, run_manager, **kwargs)
        return self._unless_cache_hit(result, run_manager)

    async def _agenerate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        link = stream_run.link_of(run_manager)
        caller = stream_run.caller_config(link)
        with stream_run.handing_over(link), stream_run.as_caller(caller):
            result = await super()._agenerate_with_cache(
                messages, stop, run_manager, **kwargs
            )
        return self._unless_cache_hit(result, run_manager)

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Embed every query in one embeddings call, then route each."""
        outputs: list[AIMessage] = []
        for start, stop in self._slices(len(inputs)):
            with suppress(Exception):  # then each item embeds, and fails, alone
                self._prefetch(inputs[start:stop])
            outputs += super().batch(
                inputs[start:stop],
                config[start:stop] if isinstance(config, list) else config,
                return_exceptions=return_exceptions,
                **kwargs,
            )
        return outputs

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Embed every query in one embeddings call, then route each."""
        outputs: list[AIMessage] = []
        for start, stop in self._slices(len(inputs)):
            with suppress(Exception):  # then each item embeds, and fails, alone
                await self._aprefetch(inputs[start:stop])
            outputs += await super().abatch(
                inputs[start:stop],
                config[start:stop] if isinstance(config, list) else config,
                return_exceptions=return_exceptions,
                **kwargs,
            )
        return outputs

    # What the router learned (``report``) --------------------------------------------

    def report(
        self, path: StrPath, *, evaluation: Sequence[Mapping[str, Any]] | None = None
    ) -> Path:
        """Write one self-contained HTML report of what this router learned to
        ``path`` (no prompt text; see ``report``); ``evaluation`` adds the rows
        of counterfactual estimates (``report.render_evaluation``); by default
        they are estimated from the decision log where it allows."""
        if evaluation is None:
            with suppress(ValueError):  # nothing to estimate from yet
                evaluation = self._calls.core.evaluate().rows
        return reports.write_report(self._report_data(), path, evaluation=evaluation)

    def summary(self) -> str:
        """One screen of text: each child's share, observed score and cost, the
        feedback counters, the budget or cost weight, and the mode."""
        return reports.summary_text(self._report_data())

    def _repr_html_(self) -> str:
        """The summary as a small table in a notebook."""
        return reports.summary_html(self._report_data())

    def stats(self) -> dict[str, float]:
        """Feedback, exploration and cooldown counters (the router defines it)."""
        raise NotImplementedError

    def _report_data(self) -> reports.ReportData:
        return reports.report_data(self._calls.core, stats=self.stats())

    def _unless_cache_hit(
        self,
        result: ChatResult,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
    ) -> ChatResult:
        """``result``, relabelled if it came from the LLM cache (see ``llm_cache``)."""
        run_id = stream_run.run_id_of(run_manager)
        hit = as_cache_hit(result, run_id)
        if hit is None:
            return result
        self._on_cache_hit(run_id)
        return hit

    def _slices(self, total: int) -> Iterator[tuple[int, int]]:
        """Slices of a batch small enough that their embeddings stay cached."""
        size = max(self._prefetch_size, 1)
        for start in range(0, total, size):
            yield start, min(start + size, total)

    # Tools and structured output, on whichever child answers -------------------------

    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]:
        """Route, then let the chosen child's own ``with_structured_output``
        answer; see ``structured_output``."""
        request = StructuredOutput(schema, kwargs)
        routed = self.bind(
            **{STRUCTURED_OUTPUT: request},
            ls_structured_output_format=request.ls_format(),
        )
        return routed | unpacker(include_raw)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind ``tools`` on whichever child answers; routing is unchanged."""
        binding = {"tools": list(tools), "tool_choice": tool_choice, **kwargs}
        traced = {k: v for k, v in kwargs.items() if k == "ls_structured_output_format"}
        return self.bind(tool_binding=binding, **traced)

    # The router's calls (``routed_call``) -------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        options = self._call_options()
        return self._calls.generate(options, messages, stop, run_manager, kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        options = self._call_options()
        return await self._calls.agenerate(options, messages, stop, run_manager, kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        options = self._call_options()
        return self._calls.stream(options, messages, stop, run_manager, kwargs)

    def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        options = self._call_options()
        return self._calls.astream(options, messages, stop, run_manager, kwargs)

    def _call_options(self) -> CallOptions:
        """This handle's own fields a call uses (the router defines it)."""
        raise NotImplementedError

    @property
    def _prefetch_size(self) -> int:
        """How many queries' embeddings can be held at once."""
        return self._calls.core.settings.embedding_cache_size

    def _prefetch(self, inputs: Sequence[LanguageModelInput]) -> None:
        """Embed the queries of ``inputs`` in one call (the cache keeps them)."""
        self._calls.core.vectors(self._batch_queries(inputs))

    async def _aprefetch(self, inputs: Sequence[LanguageModelInput]) -> None:
        """Async twin of ``_prefetch``."""
        await self._calls.core.avectors(self._batch_queries(inputs))

    def _on_cache_hit(self, run_id: str) -> None:
        """Run ``run_id`` was answered from the LLM cache, without a decision."""
        self._calls.core.pending.refuse(run_id, CACHE_HIT)

    def _batch_queries(self, inputs: Sequence[LanguageModelInput]) -> list[str]:
        """Query texts of the batch items that have one; a bad item is left to
        fail on its own call, so ``return_exceptions`` gets one result per item."""
        query = self._call_options().query
        texts = []
        for item in inputs:
            with suppress(Exception):
                texts.append(query_text(query, self._convert_input(item).to_messages()))
        return texts
