from bank.account import Account
from bank.errors import BankError, InsufficientFunds, SameAccount
from bank.ops import total_balance, transfer


def test_transfer_moves_money_and_records_it():
    ann, bob = Account("ann", 100), Account("bob", 5)
    transfer(ann, bob, 40)
    assert (ann.balance, bob.balance) == (60, 45)
    assert ann.history == [("transfer out", 40)]
    assert bob.history == [("transfer in", 40)]


def test_failed_transfer_changes_nothing():
    ann, bob = Account("ann", 10), Account("bob", 0)
    try:
        transfer(ann, bob, 11)
    except InsufficientFunds:
        pass
    else:
        raise AssertionError("expected InsufficientFunds")
    assert (ann.balance, bob.balance) == (10, 0)
    assert ann.history == [] and bob.history == []


def test_bad_amounts_and_same_account():
    ann, bob = Account("ann", 10), Account("bob", 0)
    for amount in (0, -5):
        try:
            transfer(ann, bob, amount)
        except ValueError:
            pass
        else:
            raise AssertionError("expected ValueError")
    try:
        transfer(ann, ann, 1)
    except SameAccount as exc:
        assert isinstance(exc, BankError)
    else:
        raise AssertionError("expected SameAccount")
    assert total_balance([ann, bob]) == 10 and ann.history == []
