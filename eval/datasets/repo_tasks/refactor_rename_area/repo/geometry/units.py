"""Converting areas between square metres and square feet."""

SQ_FT_PER_SQ_M = 10.7639


def to_square_feet(square_metres: float) -> float:
    return round(square_metres * SQ_FT_PER_SQ_M, 1)


def to_square_metres(square_feet: float) -> float:
    return round(square_feet / SQ_FT_PER_SQ_M, 2)
