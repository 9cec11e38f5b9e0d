from weather.convert import c_to_f
from weather.stats import mean_temperature, spread


def test_c_to_f():
    assert c_to_f(100) == 212
    assert c_to_f(-40) == -40


def test_mean_in_celsius():
    assert mean_temperature([10, 20, 21]) == 17.0


def test_spread():
    assert spread([3, -2, 7.5]) == 9.5
