"""Evaluation: coding datasets, hidden-test checking and the benchmark runner."""
