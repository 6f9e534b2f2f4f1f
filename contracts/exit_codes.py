"""The exit codes of every miniscan command and process, in one table.

| code | meaning |
|------|---------|
| 0    | done, or stopped as asked: everything pulled was committed and acked, or handed back |
| 1    | failed while running: a publish failed, a child of the demo exited on its own or had |
|      | to be killed, or an unexpected error (a bug; the log says where)                     |
| 2    | bad usage: an unknown or bad option, a --db that is neither a file in an existing    |
|      | folder nor a postgresql:// URL, a bad configuration file                             |
| 3    | could not start or reach what it needs: Pub/Sub unreachable, subscription missing,   |
|      | database missing or refused, port busy, a tool missing, settings that need more      |
|      | memory than the container's limit; a supervisor's child that fails its own set-up    |
|      | exits 3 and halts the tree                                                           |
| 4    | restart storm (supervisor): a child crashed more than --restart-max times within     |
|      | --restart-window                                                                     |
| 5    | forced stop (supervisor): a second Ctrl-C/SIGTERM, or --shutdown-timeout ran out;    |
|      | nothing is lost, unsettled messages are redelivered                                  |

Owns: the codes and `EXIT_CODES_HELP`, the same table as the last paragraph of every
command's --help. Never: anything else; this module is the table.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_STARTUP = 3
EXIT_RESTART_STORM = 4
EXIT_FORCED = 5

# \b keeps click from rewrapping the paragraph: one code a line.
EXIT_CODES_HELP = """\b
Exit codes (the same for every miniscan command):
  0 done, or stopped as asked
  1 failed while running (a publish failed, a child failed; or a bug)
  2 bad usage: a bad option, --db or configuration file
  3 could not start: Pub/Sub, the database or a port unreachable, refused or busy
  4 restart storm (supervisor)
  5 forced stop (supervisor); nothing is lost"""
