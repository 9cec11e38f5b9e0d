"""The platform's Prometheus metrics, in the process's default registry.

The lowest layer defines them so every layer can count what it does (the gateway its decisions,
the service its model calls and tasks) without importing upward. They live in
`prometheus_client`'s default registry, which is what Aegra's `/metrics` endpoint serves
(`ENABLE_PROMETHEUS_METRICS`, which `strategos serve` turns on): a served instance is scraped
like any other Prometheus target, and nothing here opens a port of its own.

Labels are bounded: tools and nodes are the registry's and the graphs' names, decisions a fixed
set, tenants the operator's API-key tenants.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "GATEWAY_DECISIONS",
    "LEASES_LOST",
    "MODEL_CALLS",
    "MODEL_TOKENS",
    "TASKS",
    "TOOL_SECONDS",
    "decision_of",
]

GATEWAY_DECISIONS = Counter(
    "strategos_gateway_decisions_total",
    "Tool calls through the gateway by outcome: executed, replayed (from the ledger), "
    "honeypot (simulated), or the error code (denied, rejected, invalid_args, …).",
    labelnames=["tool", "decision"],
)
TOOL_SECONDS = Histogram(
    "strategos_tool_seconds",
    "Wall time of a gateway call, validation to result (sandboxed runs included).",
    labelnames=["tool"],
    buckets=(0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)
MODEL_CALLS = Counter(
    "strategos_model_calls_total",
    "Model calls (each sampled choice counts) by the node that made them and the tenant.",
    labelnames=["node", "tenant"],
)
MODEL_TOKENS = Counter(
    "strategos_model_tokens_total",
    "Model tokens by node, tenant and kind (prompt or completion).",
    labelnames=["node", "tenant", "kind"],
)
TASKS = Counter(
    "strategos_tasks_total",
    "Task API events by kind: created, completed, failed, waiting_for_approval, rejected "
    "(429/403 before a run started).",
    labelnames=["event"],
)
LEASES_LOST = Counter(
    "strategos_run_leases_lost_total",
    "Runs whose lease the batched heartbeat found taken (the run is cancelled here).",
)


def decision_of(ok: bool, replayed: bool, simulated: bool, error_code: str | None) -> str:
    """The gateway's outcome of one call, as a bounded label."""
    if simulated:
        return "honeypot"
    if ok:
        return "replayed" if replayed else "executed"
    return error_code or "error"
