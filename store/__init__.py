"""store/: the scan database, with its two backends and the writer role.

Shared by both backends, here in `store/` itself: the row shapes and write results
(`rows`), the newest-wins rule (`merge`), the filters of the readers' searches
(`filters`), the connection options every store takes (`connection_options`), the errors
(`errors`), the writer and reader interfaces with the functions that pick a backend from a
path or URL (`backend`, `reader`), and the `with` protocol of every handle (`closing`).

The backends, named alike and never importing each other: `store/sqlite/` (one file, one
writer) and `store/postgres/` (one database, any number of writers), each with its
connection, schema, writer and reader.

The writer role, whichever the backend: `writer_process` (group commit, then ack), `linger`
and `writer_lock`. Replaying dead letters: `dead_letters`. The commands that read the store
live in `commands/`.
"""
