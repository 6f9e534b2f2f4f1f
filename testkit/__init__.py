"""testkit/: what the tests, the benchmarks, `.ci/run` and the demo share to run miniscan.

Owns: starting a local Pub/Sub server (`testkit.emulator`) and a throw-away PostgreSQL
cluster (`testkit.postgres_cluster`), starting `miniscan-supervisor` as a subprocess and
stopping it (`testkit.launch`, on `testkit.processes`), reading its /metrics
(`testkit.scrape`), reading the stored table back (`testkit.table`), and the one bounded
wait (`testkit.waiting`).

Never: be imported by production code (supervisor, workers, store, broker, contracts, the
scanner): an import-linter contract holds that. The demo (`demo/`) sits above it.
"""
