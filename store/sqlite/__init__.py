"""store/sqlite/: the SQLite backend, one file written by exactly one writer.

`connection` (opening a file, the writer's settings, apsw's errors as store.errors),
`schema` (the layout and its migrations), `writer` (`ScanStore`) and `reader`
(`SqliteReader`), named as `store.postgres` names its own. Never imports `store.postgres`:
what both need lives in `store/` itself (an import-linter contract keeps it so).
"""
