"""Service layer: settings, the CLI, the task API (`api`), serving (`serving`), models (`llm`)."""
