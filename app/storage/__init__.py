"""Infrastructure: where the webhook path reaches the database.

`deliveries` is the one interface (accept a delivery, look up its shop, take a batch, finish
it); `sqlite` and `postgres` implement it, each with what its database needs (`sqlite_lock` and
`inbox` for SQLite's single writer, a kept autocommit connection for PostgreSQL). `prepared`
runs the hottest statements on the driver's cursor. Nothing outside this package branches on the
database's dialect on the webhook path.
"""
