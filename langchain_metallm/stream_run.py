"""Handing the router's run to ``_stream``, which langchain-core calls without one.

``BaseChatModel.stream``/``astream`` (and ``invoke`` when streaming) call
``_stream(messages, stop, **kwargs)`` with ``run_manager=None`` on some paths, yet
a routed stream needs its run id (the key its feedback is given under) and the
callbacks that make the child's run a child of the router's run. So the caller
sets a ``ContextVar`` before handing control to langchain-core and resets it
with its token afterwards, and ``_stream`` takes it. Delete ``take`` and
``handing_over`` once langchain-core passes its run manager to ``_stream`` on
every path.

``as_caller`` makes the router's run the caller its children see: runnables read
the config of whatever called them from langchain-core's config context
(``var_child_runnable_config``) and merge its callbacks into their own, as a
``RunnableBinding`` does, which is what a provider's ``bind_tools`` returns. Left
as the code that called the router (a LangGraph node, a chain), that context
would hand the child's run the stream consumers ``child_config`` leaves out, and
parent it beside the router's run instead of under it (issue 20, defect 17).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from uuid import uuid4

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.runnables.config import patch_config, var_child_runnable_config

from langchain_metallm.child_runs import without_stream_consumers

RunManager = CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun


@dataclass(frozen=True)
class RunLink:
    """The router run a streamed call belongs to, and the child's callbacks."""

    run_id: str
    child_config: RunnableConfig


_RUN: ContextVar[RunLink | None] = ContextVar("metallm_stream_run", default=None)


def child_config(run_manager: RunManager | None) -> RunnableConfig:
    """Callbacks that make the child's run a child of the router's run (without
    the stream consumers: they get the router's tokens, see ``child_runs``)."""
    if run_manager is None:
        return {}
    manager_class = (
        AsyncCallbackManager
        if isinstance(run_manager, AsyncCallbackManagerForLLMRun)
        else CallbackManager
    )
    handlers = without_stream_consumers(run_manager.inheritable_handlers)
    manager = manager_class(
        handlers=handlers,
        inheritable_handlers=handlers,
        parent_run_id=run_manager.run_id,
        tags=run_manager.inheritable_tags,
        inheritable_tags=run_manager.inheritable_tags,
        metadata=run_manager.inheritable_metadata,
        inheritable_metadata=run_manager.inheritable_metadata,
    )
    return {"callbacks": manager}


def run_id_of(run_manager: RunManager | None) -> str:
    """The run's id (a fresh one without a run manager: nothing is traced then)."""
    return str(run_manager.run_id if run_manager else uuid4())


def link_of(run_manager: RunManager | None) -> RunLink | None:
    """The link for a known run manager (None without one)."""
    if run_manager is None:
        return None
    return RunLink(str(run_manager.run_id), child_config(run_manager))


@contextmanager
def handing_over(link: RunLink | None) -> Iterator[None]:
    """Make ``link`` what ``take`` returns inside the block; restore on exit."""
    token = _RUN.set(link)
    try:
        yield
    finally:
        _RUN.reset(token)


def stream_config(
    config: RunnableConfig | None,
    manager_class: type[CallbackManager] | type[AsyncCallbackManager],
) -> tuple[RunnableConfig, RunLink]:
    """``config`` with a fixed run id, and the link ``_stream`` should take."""
    config = ensure_config(config)
    run_id = config.get("run_id") or uuid4()
    manager = manager_class.configure(
        config.get("callbacks"),
        inheritable_tags=config.get("tags"),
        inheritable_metadata=config.get("metadata"),
    )
    manager.handlers = without_stream_consumers(manager.handlers)
    manager.inheritable_handlers = without_stream_consumers(
        manager.inheritable_handlers
    )
    manager.parent_run_id = run_id
    return {**config, "run_id": run_id}, RunLink(str(run_id), {"callbacks": manager})


def take(run_manager: RunManager | None) -> RunLink:
    """The run a streamed call belongs to: its own manager's, the one handed
    over, or a fresh id (nothing will be traced then)."""
    return link_of(run_manager) or _RUN.get() or RunLink(str(uuid4()), {})


def caller_config(
    link: RunLink | None, config: RunnableConfig | None = None
) -> RunnableConfig | None:
    """The config context the router's children should run in: ``config`` (the
    router's own; by default the current context's) with the child's callbacks
    instead of its own. None without a link: there is nothing to nest under."""
    callbacks = link.child_config.get("callbacks") if link is not None else None
    if not isinstance(callbacks, BaseCallbackManager):
        return None
    return patch_config(config, callbacks=callbacks)


@contextmanager
def as_caller(config: RunnableConfig | None) -> Iterator[None]:
    """Make ``config`` (a ``caller_config``) the config context inside the block,
    as langchain-core does for a runnable's steps, so a child that merges in its
    caller's config gets the router's run, not the router's caller's; restore on
    exit. Hold it around every step of a stream: each may call a child."""
    if config is None:
        yield
        return
    token = var_child_runnable_config.set(config)
    try:
        yield
    finally:
        var_child_runnable_config.reset(token)
