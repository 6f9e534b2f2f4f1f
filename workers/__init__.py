"""workers/: the decoder processes: pull, decode, validate, normalize."""
