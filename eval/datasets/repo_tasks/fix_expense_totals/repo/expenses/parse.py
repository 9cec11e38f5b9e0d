"""Reading expense lines of the form `name, amount`."""


class ParseError(ValueError):
    """A line that is not `name, amount`."""


def parse_line(line: str) -> tuple[str, float]:
    parts = line.split(",")
    if len(parts) != 2:
        raise ParseError(f"expected 'name, amount': {line!r}")
    name, amount = parts
    try:
        return name, float(amount)
    except ValueError:
        raise ParseError(f"not an amount: {amount!r}") from None


def parse_lines(text: str) -> list[tuple[str, float]]:
    """Every non-blank line that is not a `#` comment."""
    rows = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            rows.append(parse_line(line))
    return rows
