"""Memory kernel: working memory, episodic memory (Qdrant), memory graph (Cypher), scoring."""
