"""commands/: the `miniscan` command group, and the commands that only wire options to the
store and the broker.

The top floor beside `supervisor/`: `miniscan` wires the demo's and the built-in Pub/Sub
server's commands from their packages, and declares its own here: the store's read-side
commands (`query`, `stats` and the `dead-letters` group, with what they print: `report`,
`render`, `since`) and `miniscan setup` (`commands.setup`, which only wires options to
`broker.admin`), since they read the store and reach Pub/Sub through the broker, below.
"""
