import ast
import inspect

import settingsfile.loader as loader
import settingsfile.parse as parse


def test_parsers_live_in_parse():
    assert parse.parse_bool("on") is True
    assert parse.parse_list("a,b") == ["a", "b"]
    assert parse.parse_bool.__module__ == "settingsfile.parse"
    assert parse.parse_list.__module__ == "settingsfile.parse"


def test_loader_no_longer_defines_them():
    tree = ast.parse(inspect.getsource(loader))
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "parse_bool" not in defined and "parse_list" not in defined
    assert loader.parse_bool is parse.parse_bool


def test_behaviour_is_unchanged():
    assert loader.load("debug = 0\nhosts =", {"debug": "bool", "hosts": "list"}) == {
        "debug": False,
        "hosts": [],
    }
    try:
        parse.parse_bool("maybe")
    except ValueError:
        return
    raise AssertionError("expected ValueError")
