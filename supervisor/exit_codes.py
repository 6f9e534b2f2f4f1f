"""The supervisor's exit codes: the one table of every command, `contracts.exit_codes`.

Never: define a code; this module only names the table's codes where the supervisor uses them.
"""

from contracts.exit_codes import (
    EXIT_ERROR,
    EXIT_FORCED,
    EXIT_OK,
    EXIT_RESTART_STORM,
    EXIT_STARTUP,
    EXIT_USAGE,
)

__all__ = [
    "EXIT_ERROR",
    "EXIT_FORCED",
    "EXIT_OK",
    "EXIT_RESTART_STORM",
    "EXIT_STARTUP",
    "EXIT_USAGE",
]
