"""Sales records ("region amount" lines) and a small report CLI."""
