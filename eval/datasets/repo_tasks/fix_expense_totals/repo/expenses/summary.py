"""Totals per person."""

from expenses.parse import parse_lines


def totals(rows: list[tuple[str, float]]) -> dict[str, float]:
    result: dict[str, float] = {}
    for name, amount in rows:
        result[name] = amount
    return {name: round(value, 2) for name, value in result.items()}


def summarize(text: str) -> list[str]:
    """One `name: total` line per person, largest total first."""
    ordered = sorted(totals(parse_lines(text)).items(), key=lambda item: -item[1])
    return [f"{name}: {value:.2f}" for name, value in ordered]
