"""A floor plan: named rooms, each a shape."""

from geometry.shapes import calc_area


def total_area(rooms: dict[str, tuple]) -> float:
    return round(sum(calc_area(shape) for shape in rooms.values()), 2)


def largest_room(rooms: dict[str, tuple]) -> str:
    return max(rooms, key=lambda name: calc_area(rooms[name]))
