"""Agent example: a LangChain agent whose model is the router, with a calculator.

``create_agent`` gets the router as its model; the router sends each agent step to
Mixtral or GPT-4, both real ``ChatOpenAI`` clients on a local replay server. The
server is scripted the way a model would answer a GSM8K question with a tool: first
a calculator call, then the final answer. A ``MetaLLMFeedbackHandler`` rewards
every routing decision: a step that calls the calculator well, or a final answer
whose number matches the gold answer, scores 1.

    python examples/agent.py
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain.agents import create_agent
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from langchain_metallm import (
    LocalEmbeddings,
    MetaLLMFeedbackHandler,
    MetaLLMRouterChatModel,
)
from langchain_metallm.testing import ReplayServer, Rule, ScriptedToolCall

CHILDREN = {
    "mixtral": "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "gpt-4": "gpt-4-1106-preview",
}
QUESTION = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning "
    "and bakes muffins for her friends every day with four. She sells the remainder "
    "at the farmers' market daily for $2 per fresh duck egg. How much in dollars "
    "does she make every day at the farmers' market?"
)
GOLD = 18.0
EXPRESSION = "(16 - 3 - 4) * 2"
FINAL_ANSWER = (
    "She sells 16 - 3 - 4 = 9 eggs a day at $2 each, so she makes $18 a day.\n#### 18"
)
SYSTEM_PROMPT = (
    "Solve the user's math problem. Use the calculator for arithmetic, then give "
    "the answer and end with '#### <number>'."
)
_OPERATORS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def evaluate(expression: str) -> float:
    """The value of an arithmetic expression (numbers, + - * / // % **, brackets);
    anything else raises ValueError."""

    def value(node: ast.AST) -> float:
        number = node.value if isinstance(node, ast.Constant) else None
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            return float(number)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.operand))
        raise ValueError(f"calculator: unsupported expression {expression!r}")

    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as err:
        raise ValueError(f"calculator: cannot parse {expression!r}") from err
    return value(tree.body)


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as "(48 / 2) * 3"."""
    result = evaluate(expression)
    return str(int(result)) if result.is_integer() else str(result)


class AgentStepScorer:
    """Grades one agent step: a tool step by whether every calculator call
    evaluates, a final answer by whether its last number is the gold one."""

    def __init__(self, gold: float) -> None:
        self.gold = gold

    def __call__(
        self, inputs: Sequence[BaseMessage] | str, answer: Generation
    ) -> float:
        message = answer.message if isinstance(answer, ChatGeneration) else None
        if isinstance(message, AIMessage) and message.tool_calls:
            return float(all(_evaluates(call["args"]) for call in message.tool_calls))
        numbers = re.findall(r"-?\d+(?:\.\d+)?", answer.text.replace(",", ""))
        return float(bool(numbers) and float(numbers[-1]) == self.gold)


def _evaluates(args: dict[str, Any]) -> bool:
    try:
        evaluate(str(args.get("expression", "")))
    except (ValueError, ZeroDivisionError):
        return False
    return True


@dataclass(frozen=True)
class AgentRun:
    """The agent's messages and the router it used (to inspect what it learned)."""

    messages: list[BaseMessage]
    router: MetaLLMRouterChatModel
    routed: list[str]
    """Which child answered each agent step, in order."""


def script_answers(server: ReplayServer) -> None:
    """Make the replayed models answer ``QUESTION`` with a calculator call, then
    (once the tool result is in) with the final answer."""
    server.add_rule(
        Rule(
            tool_calls=[ScriptedToolCall("calculator", {"expression": EXPRESSION})],
            contains="Janet's ducks",
        )
    )
    server.add_rule(Rule(text=FINAL_ANSWER, contains="Janet's ducks"))


def main(embeddings: Embeddings | None = None) -> AgentRun:
    """Run the agent once on ``QUESTION`` and print its steps."""
    with ReplayServer() as server:
        script_answers(server)
        children: dict[str, BaseChatModel] = {
            name: ChatOpenAI(
                base_url=server.base_url,
                api_key=SecretStr("replay"),
                model=model,
                max_retries=0,
            )
            for name, model in CHILDREN.items()
        }
        router = MetaLLMRouterChatModel(
            models=children,
            costs={"mixtral": 0.6, "gpt-4": 20.0},
            cost_weight=0.2,
            embeddings=embeddings or LocalEmbeddings(),
        )
        agent = create_agent(router, tools=[calculator], system_prompt=SYSTEM_PROMPT)
        handler = MetaLLMFeedbackHandler(router, AgentStepScorer(GOLD))
        result = agent.invoke(
            {"messages": [HumanMessage(QUESTION)]}, config={"callbacks": [handler]}
        )
    messages: list[BaseMessage] = result["messages"]
    routed = [
        m.response_metadata["metallm"]["model"]
        for m in messages
        if isinstance(m, AIMessage) and "metallm" in m.response_metadata
    ]
    for message in messages:
        calls = message.tool_calls if isinstance(message, AIMessage) else []
        print(f"[{message.type}] {calls or message.text}")
    print(f"\nrouted steps: {routed}; rewards learned: {router.stats()['applied']}")
    return AgentRun(messages, router, routed)


if __name__ == "__main__":
    main()
