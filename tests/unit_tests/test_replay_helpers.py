"""Offline checks of the replay pieces: lookup, schema values, rules, wire format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from langchain_metallm.testing import (
    RecordedAnswers,
    Rule,
    ScriptedToolCall,
    default_gsm8k_models_path,
    default_gsm8k_path,
    default_llmrouter9_models_path,
    default_llmrouter9_path,
    fallback_reply,
    recorded_outcome,
)
from langchain_metallm.testing.openai_format import (
    Reply,
    Usage,
    stream_events,
    text_pieces,
)
from langchain_metallm.testing.recorded import count_tokens
from langchain_metallm.testing.schema_values import example_from_schema
from langchain_metallm.testing.scripts import RuleTable

DATA_DIR = Path(__file__).resolve().parents[2] / "langchain_metallm" / "data" / "gsm8k2"
ROWS: list[dict[str, Any]] = [
    {"prompt": "How many legs do 3 ducks have in total?", "responses": {"a": "6"}},
    {
        "prompt": "How many legs do 3 ducks have in total? Count the feet too.",
        "responses": {"a": "12", "b": "six"},
    },
]


def test_lookup_exact_whitespace_and_wrapped() -> None:
    answers = RecordedAnswers(ROWS)
    assert answers.models == ("a", "b")
    assert len(answers) == 2
    assert answers.answer("a", "How many legs do 3 ducks have in total?") == "6"
    assert answers.answer("a", "  How many legs\n do 3   ducks have in total? ") == "6"
    wrapped = "Answer briefly.\nQ: How many legs do 3 ducks\nhave in total?\nA:"
    assert answers.answer("a", wrapped) == "6"
    # The longest contained question wins.
    assert answers.answer("a", f"Q: {ROWS[1]['prompt']} A:") == "12"
    assert answers.answer("c", ROWS[0]["prompt"]) is None
    assert answers.answer("a", "How many legs do 3 cats have?") is None


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("text", "expected a JSON object"),
        ({"prompt": " ", "responses": {}}, "'prompt'"),
        ({"prompt": "q", "responses": {"a": 1}}, "'responses'"),
    ],
)
def test_bad_rows_are_rejected(row: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RecordedAnswers([ROWS[0], row])  # type: ignore[list-item]


def test_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        RecordedAnswers.from_jsonl(path)


def test_fallback_is_deterministic_per_model_and_message() -> None:
    first = fallback_reply("m", "What is  up?")
    assert first == fallback_reply("m", "What is up?")
    assert first != fallback_reply("n", "What is up?")
    assert first.splitlines()[-1].startswith("#### ")
    assert count_tokens("It's 3.5 km!") == 8  # It ' s 3 . 5 km !


def test_schema_examples() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "count": {"type": "integer", "minimum": 5},
            "ratio": {"type": "number", "exclusiveMaximum": 0},
            "mode": {"enum": ["fast", "slow"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
            "kept": {"type": "integer", "default": 7},
            "child": {"$ref": "#/$defs/Child"},
        },
        "$defs": {"Child": {"type": "object", "properties": {"ok": {"const": 1}}}},
    }
    assert example_from_schema(schema) == {
        "name": "sample name",
        "count": 5,
        "ratio": -1.0,
        "mode": "fast",
        "tags": ["sample tags", "sample tags"],
        "maybe": True,
        "kept": 7,
        "child": {"ok": 1},
    }
    with pytest.raises(ValueError, match="does not resolve"):
        example_from_schema({"$ref": "#/$defs/Missing"})
    with pytest.raises(TypeError, match="mapping"):
        example_from_schema([])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"text": "a", "status": 500}, "at most one"),
        ({"status": 200}, "400-599"),
        ({"delay": -1.0}, "delay"),
        ({"text": "a", "times": 0}, "times"),
        ({}, "needs"),
    ],
)
def test_rule_validation(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Rule(**fields)  # type: ignore[arg-type]


def test_rule_table_order_targets_and_counts() -> None:
    table = RuleTable()
    only_b = Rule(text="b", model="b", times=2)
    ducks = Rule(text="ducks", contains="duck", times=None)
    table.add(only_b)
    table.add(ducks)
    assert table.take("a", "hello") is None
    assert table.take("b", "a duck") is only_b
    assert table.take("b", "a duck") is only_b
    assert table.take("b", "a duck") is ducks
    assert table.take("a", "duck") is ducks
    assert len(table) == 1
    table.clear()
    assert table.take("a", "duck") is None


def test_text_pieces_join_back() -> None:
    text = " Janet has 16 eggs.\nShe eats  3.\n#### 13\n\n"
    pieces = text_pieces(text)
    assert len(pieces) > 2
    assert "".join(pieces) == text
    assert text_pieces("") == []


def test_stream_events_usage_chunk_and_tool_deltas() -> None:
    call = ScriptedToolCall("f", {"x": "a long argument value"})
    events = list(stream_events("id", 0, "m", Reply(None, (call,)), Usage(3, 4), True))
    assert events[-1] == "data: [DONE]\n\n"
    bodies = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert bodies[-1]["choices"] == []
    assert bodies[-1]["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
    }
    assert all(body["usage"] is None for body in bodies[:-1])
    arguments = "".join(
        delta["function"]["arguments"]
        for body in bodies[:-1]
        for delta in body["choices"][0]["delta"].get("tool_calls", [])
    )
    assert json.loads(arguments) == {"x": "a long argument value"}
    assert bodies[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_vendored_sample_is_a_small_subset_of_gsm8k2() -> None:
    sample_path = DATA_DIR / "sample.jsonl"
    assert sample_path.stat().st_size <= 900_000
    lines = sample_path.read_text(encoding="utf-8").splitlines()
    sample = [json.loads(line) for line in lines]
    assert len(sample) > 500
    assert {tuple(sorted(row)) for row in sample} == {
        ("answer", "id", "prompt", "responses", "scores", "task")
    }
    models = json.loads((DATA_DIR / "models.json").read_text(encoding="utf-8"))
    names = {model["name"] for model in models["models"]}
    assert all(set(row["responses"]) == names for row in sample)
    full = default_gsm8k_path()
    if full != sample_path:
        full_lines = full.read_text(encoding="utf-8").splitlines()
        ids = {json.loads(line)["id"] for line in full_lines}
        assert {row["id"] for row in sample} <= ids
        assert default_gsm8k_models_path().name == "models.json"


LLMROUTER9 = DATA_DIR.parent / "llmrouter9"


def test_vendored_llmrouter9_sample_is_a_stratified_subset_within_the_limits() -> None:
    sample_path = LLMROUTER9 / "sample.jsonl"
    vendored = [p for p in DATA_DIR.parent.rglob("*") if p.is_file()]
    assert all(p.stat().st_size <= 1_000_000 for p in vendored)
    assert sum(p.stat().st_size for p in vendored) <= 3_000_000
    lines = sample_path.read_text(encoding="utf-8").split("\n")  # not splitlines:
    sample = [json.loads(line) for line in lines if line]  # prompts hold U+2028
    assert len(sample) == 1402
    assert {tuple(sorted(row)) for row in sample} == {
        ("id", "prompt", "scores", "task")
    }
    models = json.loads((LLMROUTER9 / "models.json").read_text(encoding="utf-8"))
    assert models["license"] == "MIT"
    names = {model["name"] for model in models["models"]}
    assert len(names) == 9 and all(set(row["scores"]) == names for row in sample)
    tasks = {row["task"] for row in sample}
    assert len(tasks) == 14
    full = default_llmrouter9_path()
    if full != sample_path:  # the shared set: the sample is a quarter of each task
        full_lines = full.read_text(encoding="utf-8").split("\n")
        rows = {r["id"]: r for r in (json.loads(x) for x in full_lines if x)}
        assert all(rows[row["id"]] == row for row in sample)
        for task in tasks:
            in_full = sum(r["task"] == task for r in rows.values())
            in_sample = sum(r["task"] == task for r in sample)
            assert in_sample == round(in_full / 4)
        assert default_llmrouter9_models_path().parent == full.parent


def test_rows_without_answer_texts_are_answered_with_their_recorded_outcome() -> None:
    answers = RecordedAnswers(
        [{"prompt": "Which is larger, 2 or 3?", "scores": {"m": 1.0, "n": 0.25}}],
        source="llmrouter9",
    )
    assert answers.models == ("m", "n")
    assert answers.answer("n", "Which is larger, 2 or 3?") == (
        "[recorded llmrouter9 outcome for n: score 0.25]"
    )
    assert recorded_outcome("llmrouter9", "m", 1.0) == (
        "[recorded llmrouter9 outcome for m: score 1]"
    )
    sample = RecordedAnswers.from_jsonl(LLMROUTER9 / "sample.jsonl")
    assert sample.source == "llmrouter9" and len(sample) == 1402
    with pytest.raises(ValueError, match="'scores' must map model names to numbers"):
        RecordedAnswers([{"prompt": "q", "scores": {"m": "high"}}])


def test_without_shared_data_the_packaged_samples_are_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from langchain_metallm.testing import data_paths

    monkeypatch.setattr(data_paths, "_SHARED", tmp_path)
    assert default_llmrouter9_path() == LLMROUTER9 / "sample.jsonl"
    assert default_llmrouter9_models_path() == LLMROUTER9 / "models.json"
    assert default_gsm8k_path() == DATA_DIR / "sample.jsonl"
