"""demo/: `miniscan demo`, the whole pipeline on one machine.

A leaf: production code never imports it. It starts a local Pub/Sub server, the mock scanner
and `miniscan-supervisor` as separate processes through the test kit (`testkit`), which the
tests and benchmarks use too, and shows a live status line from the supervisor's /metrics.
"""
