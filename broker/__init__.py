"""broker/: how production code talks to Google Cloud Pub/Sub, and the only package that does.

`client` builds clients and bounded retries, `admin` creates the topic and the subscription
and lists what subscribes, `publisher` publishes to one topic (the scanner's stream, the
dead-letter replay's confirmed chunks), `subscription` pulls, acks, nacks and extends leases
for a decoder. Imports only `contracts`; the roles, the scanner, the commands, the demo and
the tests reach Pub/Sub through it (an import-linter contract keeps the library's imports here).
"""
