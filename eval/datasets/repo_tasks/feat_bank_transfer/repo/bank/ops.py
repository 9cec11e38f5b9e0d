"""Operations over several accounts."""

from bank.account import Account


def total_balance(accounts: list[Account]) -> int:
    return sum(account.balance for account in accounts)
