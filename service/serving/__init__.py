"""Serving on Aegra: the server process, its helpers and the stores it shares.

`serve` runs one Aegra instance (`strategos serve`) with batched lease heartbeats
(`aegra_leases`) and progress logged where runs execute (`aegra_progress`); `children` ties
helper processes to their parent; `graph_server` is the embedded FalkorDB; `server_store` is
the store entry point (langgraph.json → `store.path`); `sqlstore` is the connection half of
the small SQL stores and `dlq` the dead-letter queue of runs that failed.
"""
