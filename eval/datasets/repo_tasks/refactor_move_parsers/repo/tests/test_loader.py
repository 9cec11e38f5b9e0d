from settingsfile.loader import load, parse_bool, parse_list

SCHEMA = {"debug": "bool", "hosts": "list", "port": "int", "name": "str"}


def test_load_types_values():
    text = "# demo\ndebug = yes\nhosts = a, b,,c\nport = 8080\nname = demo app  # comment\n"
    assert load(text, SCHEMA) == {
        "debug": True,
        "hosts": ["a", "b", "c"],
        "port": 8080,
        "name": "demo app",
    }


def test_parsers():
    assert parse_bool(" Off ") is False
    assert parse_list(" x ,, y") == ["x", "y"]


def test_unknown_key():
    try:
        load("colour = red", SCHEMA)
    except ValueError as exc:
        assert "line 1" in str(exc)
        return
    raise AssertionError("expected ValueError")
