"""Stock levels and reorders for a small shop."""
