"""One module per agent role of the coding team; prompts are versioned in `nodes/prompts/`."""
