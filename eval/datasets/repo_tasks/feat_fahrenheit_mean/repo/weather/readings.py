"""Readings as people type them: `"12.5, 13, -2"`."""


def parse_readings(text: str) -> list[float]:
    """The numbers of a comma-separated line; blank items are skipped."""
    values = []
    for item in text.split(","):
        if item.strip():
            values.append(float(item))
    return values
