from geometry.units import to_square_feet, to_square_metres


def test_round_trip():
    assert to_square_feet(10) == 107.6
    assert to_square_metres(107.639) == 10.0
