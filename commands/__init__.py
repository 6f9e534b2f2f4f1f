"""commands/: the `miniscan` command group, wired from the packages that own each subcommand.

The top floor beside `supervisor/`: it imports the store's, the scanner's and the demo's
commands and holds no logic of its own.
"""
