"""Price arithmetic shared by the cart and the checkout."""


def round_cents(amount: float) -> float:
    """Round an amount of money to whole cents."""
    return round(amount + 1e-9, 2)


def apply_discount(amount: float, percent: float) -> float:
    """The amount after taking `percent` percent off."""
    if not 0 <= percent <= 100:
        raise ValueError("percent must be between 0 and 100")
    return round_cents(amount * percent / 100)
