"""supervisor/: the process tree that runs miniscan (`supervisor.tree` supervises it).

                         ┌──────────────── supervisor ────────────────┐
                         │ relays batches and acks, reaps, restarts,  │
                         │ detects stalls, serves :9100 (/metrics...) │
                         └───▲──────────┬────────────────▲──────┬─────┘
              DecodedBatch,  │          │ AckBatch,      │      │ DecodedBatch,
              Heartbeat      │          │ StopPulling,   │      │ Stop
                             │          ▼ WriterLost     │      ▼
  Pub/Sub ──pull──▶  decoder-1 … decoder-N         writer (single) ──commit──▶ SQLite (WAL)
     ▲                       │                          │
     └──ack / nack / extend──┘     ◀── AckBatch ────────┘  (only after the commit returned)

Every child has exactly one duplex pipe, to the supervisor; the supervisor relays
DecodedBatch from decoders to the writer and AckBatch from the writer back to the decoder
slot that pulled the messages. Why pipes per child and not shared multiprocessing.Queues: the
Python docs warn that a process killed while using a Queue may corrupt it (a half-written
message, a lock held forever), and miniscan must survive SIGKILL of any child. A fresh pipe
per child incarnation cannot be corrupted by anyone else's death.

Acks flow writer -> supervisor -> decoder -> Pub/Sub; decoders own the leases of what they
pulled (extend while held, nack when the writer is lost or when stopping). The writer is
spawned; decoders fork from a server that preloaded their libraries (`start_methods`).
"""
