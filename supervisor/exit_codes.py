"""The exit codes of `miniscan-supervisor` and of its children, in one table.

| code | meaning |
|------|---------|
| 0    | clean stop: everything pulled was committed and acked, or handed back |
| 1    | unexpected error (a bug); the log says where |
| 2    | bad command line (click's usage error) |
| 3    | could not start: Pub/Sub unreachable, subscription missing, database refused,   |
|      | metrics port busy, settings that need more memory than the container's limit;   |
|      | a child that fails its own set-up exits 3 and halts the tree                    |
| 4    | restart storm: a child crashed more than `--restart-max` times within `--restart-window` |
| 5    | forced stop: a second Ctrl-C/SIGTERM, or `--shutdown-timeout` ran out;          |
|      | nothing is lost, unsettled messages are redelivered                             |

Never: anything else; this module is the table.
"""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_STARTUP = 3
EXIT_RESTART_STORM = 4
EXIT_FORCED = 5
