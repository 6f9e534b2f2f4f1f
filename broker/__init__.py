"""broker/: how production code talks to Google Cloud Pub/Sub.

`client` builds clients and bounded retries, `admin` creates the topic and the subscription,
`subscription` pulls, acks, nacks and extends leases for a decoder. Imports only `contracts`;
the roles, the scanner, the demo and the tests reach Pub/Sub through it.
"""
