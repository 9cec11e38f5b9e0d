from bank.account import Account
from bank.errors import InsufficientFunds
from bank.ops import total_balance


def test_deposit_and_withdraw():
    account = Account("ann", 100)
    account.deposit(50)
    account.withdraw(30)
    assert account.balance == 120
    assert account.history == [("deposit", 50), ("withdrawal", 30)]


def test_overdraft_is_refused():
    account = Account("bob", 10)
    try:
        account.withdraw(11)
    except InsufficientFunds:
        assert account.balance == 10
        return
    raise AssertionError("expected InsufficientFunds")


def test_total_balance():
    assert total_balance([Account("a", 5), Account("b", 7)]) == 12
