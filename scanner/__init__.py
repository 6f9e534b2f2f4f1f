"""scanner/: a mock scanner that publishes realistic scan results (a leaf client of `broker`)."""
