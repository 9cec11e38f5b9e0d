import pathlib

import geometry.plan as plan
import geometry.shapes as shapes


def test_area_is_the_new_name():
    assert shapes.area(("rect", 3, 3)) == 9
    assert not hasattr(shapes, "calc_area")
    assert not hasattr(plan, "calc_area")


def test_no_calc_area_left_in_the_package():
    package = pathlib.Path(shapes.__file__).parent
    for path in package.glob("*.py"):
        assert "calc_area" not in path.read_text(), path.name


def test_plan_still_works():
    rooms = {"a": ("square", 3), "b": ("rect", 1, 2)}
    assert plan.total_area(rooms) == 11
    assert plan.largest_room(rooms) == "a"
