from settingsfile.defaults import with_defaults
from settingsfile.loader import load


def test_file_values_override_defaults():
    values = load("port = 9000", {"port": "int"})
    assert with_defaults(values) == {"debug": False, "hosts": ["localhost"], "port": 9000}
