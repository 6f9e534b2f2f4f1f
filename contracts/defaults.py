"""Every default a miniscan process, command, demo, test or benchmark starts from.

Owns: the one spelling of each default name, path and port: the Pub/Sub project, topic and
subscription, the subscription's ack deadline, the database path and its environment
variable, the metrics port. The settings classes, the demo and the tests all read them
here, so changing one changes it everywhere.

Never: read the environment, hold logic, or import anything.
"""

from __future__ import annotations

DEFAULT_PROJECT = "test-project"
DEFAULT_TOPIC = "scan-topic"
DEFAULT_SUBSCRIPTION = "scan-sub"
# Short on purpose: miniscan extends leases of what it holds, so this deadline is only the
# time a message held by a killed process waits before Pub/Sub redelivers it (issue 5).
DEFAULT_ACK_DEADLINE_S = 10

DEFAULT_DB_PATH = "data/scan_results.db"
DB_PATH_ENV = "MINISCAN_DB"

DEFAULT_METRICS_PORT = 9100

# How long an admin call (create, get, list) keeps retrying an unreachable Pub/Sub.
DEFAULT_CONNECT_TIMEOUT_S = 15.0

# Memory is bounded in bytes, not only in messages (issue 12): what one decoder may hold
# pulled and unacked, and what one commit may carry.
DEFAULT_MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024
DEFAULT_BATCH_BYTES = 16 * 1024 * 1024
