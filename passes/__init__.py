"""Graph rewrites on tvmse's integer form (tvmse.ir), one pass per file; ``pipeline`` runs them in order."""
