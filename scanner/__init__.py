"""scanner/: a mock scanner that publishes realistic scan results, and Pub/Sub tooling."""
