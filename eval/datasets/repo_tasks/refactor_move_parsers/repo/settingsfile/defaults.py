"""Default values, overridden by what a settings file says."""

DEFAULTS: dict[str, object] = {"debug": False, "hosts": ["localhost"], "port": 8000}


def with_defaults(values: dict[str, object]) -> dict[str, object]:
    """The defaults, with every key of `values` taking precedence."""
    return {**DEFAULTS, **values}
