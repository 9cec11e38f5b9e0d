"""The chat models the team calls, and where they run.

`models` holds the providers and the structured-output call every agent uses; `local_model`
builds and runs the bundled `llama-server`; `scripted` is the deterministic chat model for tests
and offline demos (`STRATEGOS_SCRIPTED_MODEL`). `prices` says what a call costs, `routing` picks
the cheapest adequate endpoint per call, `cache` and `semantic_cache` answer repeated greedy
calls from Redis.
"""
