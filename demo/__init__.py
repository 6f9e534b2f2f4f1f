"""demo/: running miniscan on one machine: the emulator launcher and `miniscan demo`.

A leaf: production code never imports it. It starts Google's Pub/Sub emulator, the mock
scanner and `miniscan-supervisor` as separate processes; the tests and benchmarks use the
same launchers (`demo.emulator`, `demo.launch`) and the same /metrics reader (`demo.scrape`).
"""
