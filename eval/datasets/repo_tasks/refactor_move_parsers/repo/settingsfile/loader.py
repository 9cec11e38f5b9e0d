"""Loading a settings text: `key = value` lines, `#` comments, typed by a schema."""

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"not a yes/no value: {text!r}")


def parse_list(text: str) -> list[str]:
    """Comma-separated items, stripped; empty items are dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def load(text: str, schema: dict[str, str]) -> dict[str, object]:
    """Values of the keys in `schema` ('bool', 'list', 'int' or 'str')."""
    values: dict[str, object] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, raw = line.partition("=")
        key = key.strip()
        if not sep or key not in schema:
            raise ValueError(f"line {number}: unknown setting {key!r}")
        kind = schema[key]
        if kind == "bool":
            values[key] = parse_bool(raw)
        elif kind == "list":
            values[key] = parse_list(raw)
        elif kind == "int":
            values[key] = int(raw)
        else:
            values[key] = raw.strip()
    return values
