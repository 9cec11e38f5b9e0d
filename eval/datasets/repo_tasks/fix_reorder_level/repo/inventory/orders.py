"""Which items to reorder, and how many."""

from inventory.stock import Stock


def reorder_list(stock: Stock) -> list[str]:
    """Names of the items to reorder, sorted."""
    return sorted(name for name in stock.quantity if stock.needs_reorder(name))


def order_sizes(stock: Stock, target: int) -> dict[str, int]:
    """For each item to reorder, how many to buy to get back to `target`."""
    return {name: target - stock.quantity[name] for name in reorder_list(stock)}
