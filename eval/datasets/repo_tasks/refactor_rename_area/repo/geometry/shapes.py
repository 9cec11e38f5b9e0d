"""Shapes as tuples: ("rect", width, height), ("square", side), ("circle", radius)."""

import math


def calc_area(shape: tuple) -> float:
    kind = shape[0]
    if kind == "rect":
        return shape[1] * shape[2]
    if kind == "square":
        return shape[1] ** 2
    if kind == "circle":
        return math.pi * shape[1] ** 2
    raise ValueError(f"unknown shape {kind!r}")
