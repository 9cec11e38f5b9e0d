"""The retry policies every architecture's nodes share, so a fault is retried the same way.

A model endpoint that drops a connection is tried again a little later; a dropped PostgreSQL
connection (a restart, a failover) in a node's ledger or store call is retried for ~8 s. Both
are safe to repeat: every side effect goes through the idempotent ledger.
"""

from __future__ import annotations

import psycopg
from langgraph.types import RetryPolicy

MODEL_RETRY = RetryPolicy(max_attempts=3, initial_interval=1.0, retry_on=(ConnectionError,))
DB_RETRY = RetryPolicy(
    max_attempts=5, initial_interval=0.5, max_interval=8.0, retry_on=(psycopg.OperationalError,)
)
