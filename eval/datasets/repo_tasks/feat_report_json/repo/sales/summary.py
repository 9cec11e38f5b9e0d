"""Reading sales lines and summing them."""


def read_rows(lines: list[str]) -> list[tuple[str, float]]:
    """`"north 12.5"` -> `("north", 12.5)`; blank lines are skipped."""
    rows = []
    for line in lines:
        if line.strip():
            region, amount = line.split()
            rows.append((region, float(amount)))
    return rows


def by_region(rows: list[tuple[str, float]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for region, amount in rows:
        totals[region] = round(totals.get(region, 0.0) + amount, 2)
    return dict(sorted(totals.items()))


def grand_total(rows: list[tuple[str, float]]) -> float:
    return round(sum(amount for _, amount in rows), 2)
