from inventory.orders import order_sizes, reorder_list
from inventory.stock import Stock


def make_stock():
    stock = Stock()
    stock.track("apples", 10, 3)
    stock.track("pears", 2, 3)
    stock.track("plums", 3, 3)
    return stock


def test_reorder_skips_items_above_their_level():
    assert "apples" not in reorder_list(make_stock())


def test_reorder_includes_items_at_their_level():
    assert reorder_list(make_stock()) == ["pears", "plums"]


def test_taking_too_many_fails():
    stock = make_stock()
    try:
        stock.take("pears", 5)
    except ValueError:
        return
    raise AssertionError("expected ValueError")
