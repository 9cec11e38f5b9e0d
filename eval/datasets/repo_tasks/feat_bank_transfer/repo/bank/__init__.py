"""Accounts with a balance and a history."""
