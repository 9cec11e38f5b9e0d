"""LangGraph state graphs: the shared team state and the coding-team graph."""
