from shop.cart import Cart


def test_subtotal_adds_quantities():
    cart = Cart()
    cart.add("pen", 1.5, 2)
    cart.add("pad", 4.0)
    cart.add("pen", 1.5)
    assert cart.subtotal() == 8.5


def test_total_with_discount():
    cart = Cart()
    cart.add("book", 20.0, 2)
    assert cart.total(discount_percent=25) == 30.0
