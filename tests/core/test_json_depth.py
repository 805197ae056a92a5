"""The nesting bound every JSON body gets before json.loads (core.parsers.json_depth_exceeds): a cheap count of
opening brackets answers for bodies that cannot be too deep, the character scan for the rest; both must agree
on where the limit lies, and brackets inside strings never count."""

import pytest

from core.parsers import json_depth_exceeds


@pytest.mark.parametrize("depth", [1, 31, 32, 33, 100])
def test_the_limit_holds_whichever_way_the_answer_is_found(depth):
    nested = "[" * depth + "]" * depth
    assert json_depth_exceeds(nested, 32) is (depth > 32)
    # Many siblings: more opening brackets than the limit (no shortcut), yet shallow.
    siblings = "[" + ",".join(["[1]"] * 100) + "]"
    assert json_depth_exceeds(siblings, 32) is False


def test_brackets_inside_strings_do_not_nest():
    text = '{"a": "' + "[" * 500 + '", "b": [[1]]}'
    assert json_depth_exceeds(text, 32) is False
    escaped = '{"a": "\\"' + "[" * 500 + '"}'  # an escaped quote does not end the string
    assert json_depth_exceeds(escaped, 32) is False


def test_a_prediction_body_is_shallow():
    body = '{"inputs": [[0.1, 0.2, 0.3]], "parameters": {"cache": false}}'
    assert json_depth_exceeds(body, 4) is False
    assert json_depth_exceeds(body, 2) is True
