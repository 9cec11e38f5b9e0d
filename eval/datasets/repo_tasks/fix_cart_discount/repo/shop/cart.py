"""A cart of items, each with a unit price and a quantity."""

from shop.pricing import apply_discount, round_cents


class Cart:
    def __init__(self) -> None:
        self.items: dict[str, tuple[float, int]] = {}

    def add(self, name: str, price: float, quantity: int = 1) -> None:
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        old_price, old_quantity = self.items.get(name, (price, 0))
        self.items[name] = (price, old_quantity + quantity)

    def subtotal(self) -> float:
        return round_cents(sum(price * qty for price, qty in self.items.values()))

    def total(self, discount_percent: float = 0) -> float:
        return apply_discount(self.subtotal(), discount_percent)
