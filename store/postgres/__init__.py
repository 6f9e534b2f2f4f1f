"""store/postgres/: the PostgreSQL backend, one database shared by any number of writers.

`connection` (libpq URLs, connections, psycopg's errors as store.errors), `schema` (the
layout, its version stamp and migrations), `writer` (`PostgresStore`) and `reader`
(`PostgresReader`), named as `store.sqlite` names its own; `partition` (`scans` spread over
hash partitions of ip, `miniscan partition`) is PostgreSQL's alone. Needs psycopg, an
optional extra: nothing outside this package imports it except through
`store.backend.import_postgres`. Never imports `store.sqlite` (an import-linter contract
keeps it so).
"""
