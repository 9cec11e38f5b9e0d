from shop.cart import Cart
from shop.pricing import apply_discount


def test_no_discount_keeps_the_price():
    cart = Cart()
    cart.add("mug", 7.25, 3)
    assert cart.total() == 21.75


def test_discounts_take_the_percent_off():
    assert apply_discount(80.0, 10) == 72.0
    assert apply_discount(19.99, 100) == 0.0
    assert apply_discount(3.33, 50) == 1.67


def test_bad_percent_is_refused():
    try:
        apply_discount(10.0, 120)
    except ValueError:
        return
    raise AssertionError("a discount over 100% must raise ValueError")
