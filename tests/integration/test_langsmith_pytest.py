"""LangSmith's pytest plugin is active for the suite, and offline unless tracking is asked for.

The trajectory cases run under `@pytest.mark.langsmith` (tests/integration/test_trajectory_eval.py).
The installed `langsmith` registers its plugin through a pytest11 entry point; the suite sets
LANGSMITH_TEST_TRACKING=false unless the caller set it, which is the plugin's local mode: the
tests run as plain tests. A key in the environment alone must not make them upload, which a
nested pytest run checks against the loopback stand-in.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env
from tests.integration.langsmith_standin import langsmith_standin


def test_the_plugin_is_registered_with_its_marker(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.hasplugin("langsmith_plugin")
    markers = pytestconfig.getini("markers")
    assert any(str(line).startswith("langsmith:") for line in markers)


def test_marked_trajectory_cases_run_offline_even_with_a_key(tmp_path: Path) -> None:
    with langsmith_standin() as (url, got):
        env = cli_env(tmp_path, LANGSMITH_ENDPOINT=url, LANGSMITH_API_KEY="lsv2-standin")
        env.pop("LANGSMITH_TEST_TRACKING", None)  # the nested suite's own default applies
        env.pop("LANGSMITH_TRACING", None)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/integration/test_trajectory_eval.py",
                "-k",
                "test_each_case_takes_its_reference_path and (all-agree or pipeline-reviewed)",
            ],
            cwd=REPO,
            env={**env, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "2 passed" in done.stdout
        assert not got.keys, "the plugin contacted LangSmith"
