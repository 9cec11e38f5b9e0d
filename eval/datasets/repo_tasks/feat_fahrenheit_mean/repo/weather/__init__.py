"""Temperature readings (stored in Celsius) and simple statistics."""
