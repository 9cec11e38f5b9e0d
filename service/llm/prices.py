"""What a model call costs: the operator's price table, and the bundled model's CPU-seconds.

A priced endpoint costs `prompt_tokens × prompt price + completion_tokens × completion price`
(USD per million tokens, `STRATEGOS_MODEL_PRICES`). The bundled llama-server has no invoice, but
it occupies the machine's cores: `llama_threads` cores for `1/throughput` seconds per token. With
the measured throughputs (bench/model: prompt ~150 tok/s, generation 12.3 tok/s on 2 cores) a
prompt token takes 2/150 = 0.0133 CPU-seconds and a generated one 2/12.3 = 0.163; at the default
$0.00001 per CPU-second (a cloud vCPU-hour, $0.036) that is $0.13 per million prompt tokens and
$1.63 per million completion tokens. A scripted model (tests, demos) and a cached answer cost 0.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from graphs.state import Usage
from service.settings import ModelPrice, Settings
from tools.telemetry import MODEL_COST

FREE = ModelPrice(prompt_per_mtok=0.0, completion_per_mtok=0.0)
SCRIPTED = "scripted"
"""The name a scripted model is priced and labelled under (always free)."""


def local_price(settings: Settings) -> ModelPrice:
    """The bundled model's price per million tokens, from its CPU-seconds per token."""
    per_cpu_s = settings.local_cpu_second_usd * settings.llama_threads * 1_000_000
    return ModelPrice(
        prompt_per_mtok=per_cpu_s / settings.local_prompt_tok_per_s,
        completion_per_mtok=per_cpu_s / settings.local_generation_tok_per_s,
    )


def price_of(name: str, settings: Settings, *, local: bool) -> ModelPrice:
    """The configured price of model `name`; the CPU price when it runs on the bundled server.

    An unknown remote model costs 0 rather than a guess: a wrong price is worse than a visible
    zero, and the operator adds the model to `STRATEGOS_MODEL_PRICES`.
    """
    if name in settings.model_prices:
        return settings.model_prices[name]
    return local_price(settings) if local else FREE


def cost_usd(price: ModelPrice, prompt_tokens: int, completion_tokens: int) -> float:
    """Dollars for these token counts at `price`."""
    return (
        prompt_tokens * price.prompt_per_mtok + completion_tokens * price.completion_per_mtok
    ) / 1_000_000


def model_name(model: BaseChatModel) -> str:
    """The name a model is priced and labelled under: its requested model, or `scripted`."""
    if isinstance(model, ChatOpenAI):
        return model.model_name
    return SCRIPTED if model._llm_type == "strategos-scripted" else model._llm_type


def priced(usage: Usage, price: ModelPrice) -> Usage:
    """`usage` with its cost at `price` (a cost already set, by the router, is kept)."""
    if "cost_usd" in usage:
        return usage
    return {
        **usage,
        "cost_usd": cost_usd(price, usage["prompt_tokens"], usage["completion_tokens"]),
    }


def account(
    usage: Usage,
    model: BaseChatModel | None,
    settings: Settings,
    *,
    local_url: str | None,
    node: str,
    tenant: str,
) -> Usage:
    """`usage` priced at `model`'s price and counted in the cost metric.

    A routed answer arrives priced (its endpoint counted it); without a model nothing is priced.
    """
    if model is None or "cost_usd" in usage:
        return usage
    name = model_name(model)
    base = (model.openai_api_base or "").rstrip("/") if isinstance(model, ChatOpenAI) else ""
    local = bool(base) and base == local_url
    usage = priced(usage, price_of(name, settings, local=local))
    MODEL_COST.labels(tenant=tenant, node=node, model=name).inc(usage.get("cost_usd", 0.0))
    return usage
