"""The strategos CLI with two test instruments on the delivery tool (nothing else changes).

- every execution of `deliver_files` appends a line to `$DELIVERY_COUNTER` before it runs, so
  the test counts the side effect itself rather than trusting a log of the process;
- with `DIE_AFTER_DELIVERY=1` the process SIGKILLs itself right after the gateway recorded the
  completed delivery, before the deliver node returns and its checkpoint is written.

Usage: python -m tests.e2e.instrumented_cli run|resume ...
"""

from __future__ import annotations

import os
import signal
from typing import Any

from tools.gateway import ToolGateway, ToolObservation

_original_execute = ToolGateway._execute


async def _instrumented_execute(self: ToolGateway, call: Any, attempt: int | None) -> Any:
    delivering = call.spec.name == "deliver_files"
    if delivering:
        with open(os.environ["DELIVERY_COUNTER"], "a") as counter:
            counter.write(f"{os.getpid()}\n")
            counter.flush()
            os.fsync(counter.fileno())
    observation: ToolObservation = await _original_execute(self, call, attempt)
    if delivering and os.environ.get("DIE_AFTER_DELIVERY") == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    return observation


ToolGateway._execute = _instrumented_execute  # type: ignore[method-assign]

if __name__ == "__main__":
    from service.cli import app

    app()
