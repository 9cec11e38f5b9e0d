"""Reading `key = value` settings files into typed values."""
