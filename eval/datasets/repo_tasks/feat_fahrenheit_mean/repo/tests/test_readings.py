from weather.readings import parse_readings
from weather.stats import mean_temperature


def test_parse_and_average():
    readings = parse_readings("12.5, 13,, -2 ")
    assert readings == [12.5, 13.0, -2.0]
    assert mean_temperature(readings) == 7.8
