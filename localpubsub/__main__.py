"""`python -m localpubsub --port N`: the built-in Pub/Sub server as the launcher starts it
(`testkit.emulator`), with whatever interpreter runs the tests, whether or not the `miniscan`
script is on PATH.

Never: do more than call the command; `localpubsub.cli` owns its options and exit codes.
"""

from localpubsub.cli import main

main()
