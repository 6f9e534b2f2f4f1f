"""localpubsub/: a local Pub/Sub server in Python for where Google's emulator is missing (issue 16).

It speaks the real `google.pubsub.v1` Publisher and Subscriber gRPC services, so every
client reaches it through PUBSUB_EMULATOR_HOST exactly as it reaches Google's emulator;
`miniscan emulator --port N` (or `python -m localpubsub --port N`) starts it and prints
Google's own ready line. Nothing is kept on disk.

    clients --gRPC--> service.py    one handler per RPC: decode, call the state, status codes
                          |  streaming.py   a StreamingPull: its requests read on a thread
                          v
                      state.py      PubSubState: one lock; topics, subscriptions, the pull loop
                          |
                          v
                      subscribed.py Subscribed: one subscription, the Condition its pulls sleep on
                          |
                          v
                      queue.py      MessageQueue per subscription: backlog, leases, deadlines

    names.py: resource names, ack ids, ApiError; subscription_config.py: what a new
    subscription may ask for; protos.py: the raw protobuf classes; server.py: the gRPC
    server; cli.py: `miniscan emulator`, signals, the ready line.

A leaf, like the mock scanner: production code never imports it (import-linter checks it);
only the demo launcher starts it, as a separate process. Google's emulator stays the
reference: tests/pubsub/test_pubsub_conformance.py holds both servers to the same behaviour.
"""
