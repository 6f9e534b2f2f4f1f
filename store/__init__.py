"""store/: the single-writer SQLite database of scan results (see `store.db`)."""
