"""Errors of the bank package."""


class BankError(Exception):
    """Base of every bank error."""


class InsufficientFunds(BankError):
    """The balance does not cover a withdrawal."""
