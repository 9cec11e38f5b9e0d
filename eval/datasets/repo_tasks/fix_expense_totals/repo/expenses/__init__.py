"""Expense lines ("name, amount") parsed and summed per person."""
