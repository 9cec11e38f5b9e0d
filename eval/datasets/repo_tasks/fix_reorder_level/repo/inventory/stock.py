"""Quantities on hand and the level at which each item is reordered."""


class Stock:
    def __init__(self) -> None:
        self.quantity: dict[str, int] = {}
        self.level: dict[str, int] = {}

    def track(self, name: str, quantity: int, reorder_level: int) -> None:
        self.quantity[name] = quantity
        self.level[name] = reorder_level

    def take(self, name: str, count: int) -> None:
        if count > self.quantity.get(name, 0):
            raise ValueError(f"not enough {name}")
        self.quantity[name] -= count

    def needs_reorder(self, name: str) -> bool:
        """True when the quantity has fallen to the reorder level or below."""
        return self.quantity[name] < self.level[name]
