"""The one-call JSON schema the bundled model decodes under: every tool, every reference."""

from __future__ import annotations

import json

import jsonschema_rs

from service.llm.tool_calls import call_from_text, tool_call_schema
from tools.builtin import default_registry

DEFINITIONS = [spec.tool_definition() for spec in default_registry().list()]


def test_every_catalogue_call_validates_and_references_resolve() -> None:
    schema = tool_call_schema(DEFINITIONS)
    assert jsonschema_rs.meta.is_valid(schema)
    validator = jsonschema_rs.validator_for(schema)
    for spec in default_registry().list():
        for example in spec.examples:
            args = example.args.model_dump(mode="json")
            validator.validate({"thought": "why", "tool": spec.name, "args": args})
    refs = [ref for ref in json.dumps(schema).split('"$ref": "')[1:]]
    assert refs, "some tool argument schema has definitions, so this test covers hoisting"
    for ref in refs:
        name = ref.split('"', 1)[0].removeprefix("#/$defs/")
        assert name in schema["$defs"], name


def test_an_unknown_tool_or_a_cut_reply_is_a_turn_without_a_call() -> None:
    offered = ["read_file", "finish"]
    good = call_from_text(
        '{"thought": "look", "tool": "read_file", "args": {"path": "a.py"}}', offered
    )
    assert good.content == "look"
    assert [(c["name"], c["args"]) for c in good.tool_calls] == [("read_file", {"path": "a.py"})]
    assert call_from_text('{"thought": "x", "tool": "rm", "args": {}}', offered).tool_calls == []
    assert call_from_text('{"thought": "cut off at the len', offered).tool_calls == []
