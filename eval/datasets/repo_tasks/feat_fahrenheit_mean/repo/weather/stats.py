"""Statistics over readings in Celsius."""


def mean_temperature(readings: list[float]) -> float:
    """The mean of `readings`, rounded to one decimal."""
    if not readings:
        raise ValueError("no readings")
    return round(sum(readings) / len(readings), 1)


def spread(readings: list[float]) -> float:
    return round(max(readings) - min(readings), 1)
