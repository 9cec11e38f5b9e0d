"""The task API: the façade over LangGraph threads and runs, and the server's auth.

`app` is the FastAPI app (langgraph.json → `http.app`) with its routes beside it (schemas,
errors, request dependencies, admission, the WebSocket stream, the dead-letter routes); `auth`
and `run_guard` are what the server checks on every call (langgraph.json → `auth.path`);
`tenancy` maps API keys to tenants and `rate_limits` holds the per-tenant limits and the
backpressure gauges. `run_driver` and `run_outcome` start the team's runs through the server
and log how they ended: the façade never runs the graph itself.
"""
