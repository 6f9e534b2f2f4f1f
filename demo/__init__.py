"""demo/: running miniscan on one machine: the emulator launcher and `miniscan demo`.

A leaf: production code never imports it. It starts a local Pub/Sub server (Google's
emulator, or the built-in `localpubsub` where that is missing), the mock scanner and
`miniscan-supervisor` as separate processes; the tests and benchmarks use the same
launchers (`demo.emulator`, `demo.launch`) and the same /metrics reader (`demo.scrape`).
"""
