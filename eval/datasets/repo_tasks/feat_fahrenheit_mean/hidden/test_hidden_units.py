from weather.convert import c_to_f, f_to_c
from weather.stats import mean_temperature


def test_f_to_c_inverts_c_to_f():
    assert f_to_c(212) == 100
    assert f_to_c(-40) == -40
    assert abs(f_to_c(c_to_f(36.6)) - 36.6) < 1e-9


def test_mean_in_each_unit():
    assert mean_temperature([10, 20, 21]) == 17.0
    assert mean_temperature([10, 20, 21], unit="C") == 17.0
    assert mean_temperature([10, 20, 21], unit="F") == 62.6
    assert mean_temperature([0, 100], "F") == 122.0


def test_unknown_unit_is_refused():
    try:
        mean_temperature([1.0], unit="K")
    except ValueError:
        return
    raise AssertionError("unit 'K' must raise ValueError")
