"""One short task on the real bundled model: its report states what it cost in CPU-seconds.

The bundled model has no invoice; its price is the CPU it occupies (`service.llm.prices`). The
run is kept small (one coder iteration, no sampled candidates) because the machine generates
about 12 tokens a second.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.llm.prices import local_price
from service.settings import Settings
from tests.conftest import REPO, cli_env

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.timeout(1200)]

GOAL = (
    "Write count_vowels(text: str) -> int that counts the vowels a, e, i, o and u in text, "
    "in upper or lower case.\nExample: count_vowels('Hello World') == 3"
)


def test_a_real_model_task_reports_its_cpu_priced_cost(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = cli_env(
        tmp_path,
        STRATEGOS_MAX_ITERATIONS="1",
        STRATEGOS_SAMPLES="0",
        STRATEGOS_MEMORY_ENABLED="false",
    )
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "run", GOAL, "--approve", "auto", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1100,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    log = done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "REPORT.json").is_file(), log
    report = json.loads((out / "REPORT.json").read_text())
    price = local_price(Settings())  # the defaults the run used: $0.00001 per CPU-second
    expected = (
        report["prompt_tokens"] * price.prompt_per_mtok
        + report["completion_tokens"] * price.completion_per_mtok
    ) / 1e6
    assert report["prompt_tokens"] > 0
    assert report["cost_usd"] == pytest.approx(expected, rel=1e-3)
    assert f"${report['cost_usd']:.6f}" in done.stdout, log
    print(f"\nreal-model task: {report['model_calls']} calls, ${report['cost_usd']:.6f}")
