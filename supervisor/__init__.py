"""supervisor/: the process tree that runs miniscan (see `supervisor.tree`)."""
