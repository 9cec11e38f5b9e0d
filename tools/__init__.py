"""Tools the agents call, reached only through the gateway; sandboxes run untrusted code."""
