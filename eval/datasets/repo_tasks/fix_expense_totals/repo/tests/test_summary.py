from expenses.summary import summarize, totals


def test_totals_add_up_repeated_names():
    assert totals([("ann", 2.0), ("bob", 1.0), ("ann", 3.5)]) == {"ann": 5.5, "bob": 1.0}


def test_single_entries():
    assert totals([("cy", 4.0)]) == {"cy": 4.0}
