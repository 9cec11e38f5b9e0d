from expenses.summary import summarize, totals


def test_summary_of_a_file_with_spaces_and_repeats():
    text = "# week 1\nann, 10\nbob,4.5\n ann , 2.25\n\nbob , 0.5\ncy,20\n"
    assert summarize(text) == ["cy: 20.00", "ann: 12.25", "bob: 5.00"]


def test_totals_round_to_cents():
    assert totals([("d", 0.1), ("d", 0.2)]) == {"d": 0.3}
