from geometry.plan import largest_room, total_area


def test_single_shapes():
    assert total_area({"a": ("rect", 2, 3)}) == 6
    assert total_area({"b": ("square", 4)}) == 16
    assert total_area({"c": ("circle", 1)}) == 3.14


def test_plan():
    rooms = {"hall": ("rect", 2, 5), "bath": ("square", 2), "den": ("circle", 2)}
    assert total_area(rooms) == 26.57
    assert largest_room(rooms) == "den"
