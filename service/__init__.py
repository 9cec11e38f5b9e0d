"""Service layer: settings, model providers, persistence, CLI and the benchmark entry points."""
