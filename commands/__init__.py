"""commands/: the `miniscan` command group, and the store's read-side commands.

The top floor beside `supervisor/`: `miniscan` wires the scanner's, the demo's and the
built-in Pub/Sub server's commands from their packages, and declares the store's own here
(`query`, `stats` and the `dead-letters` group, with what they print: `report`, `render`,
`since`), since they read the store and republish through the broker, which sit below.
"""
