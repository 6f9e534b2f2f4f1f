"""commands/: the `miniscan` command group, wired from the packages that own each subcommand.

The top floor beside `supervisor/`: it imports the store's and the demo's commands, and
declares `miniscan setup` (`commands.setup`), which only wires options to `broker.admin`.
"""
