from inventory.orders import order_sizes, reorder_list
from inventory.stock import Stock


def test_needs_reorder_at_and_below_the_level():
    stock = Stock()
    stock.track("a", 5, 5)
    stock.track("b", 6, 5)
    stock.track("c", 0, 0)
    assert stock.needs_reorder("a")
    assert not stock.needs_reorder("b")
    assert stock.needs_reorder("c")


def test_taking_items_triggers_a_reorder():
    stock = Stock()
    stock.track("nails", 12, 4)
    stock.take("nails", 8)
    assert reorder_list(stock) == ["nails"]
    assert order_sizes(stock, 20) == {"nails": 16}
