"""How a PostgreSQL write transaction's statements travel: each is prepared once per connection
(libpq's named Parse), then all of them, BEGIN and COMMIT with them, are sent in libpq's pipeline
mode with their values apart from the SQL, and read back in one round trip; the rows a query or a
RETURNING gives are read by psycopg's loaders (its adapters' map), as its cursor would read them.
PostgreSQL then neither parses, plans nor reads values out of SQL text again, and psycopg's
cursor is not in the way (benchmarks/RESULTS.md, issue 25). The values mean what the SQL
literals psycopg's ClientCursor writes would mean: a str goes untyped, so the server gives it the
type its place needs, as a quoted literal; an int goes as bigint (numeric past its range), a float
as double precision, a bool as boolean, None as NULL. Anything else, or a str holding NUL (which
PostgreSQL's text cannot), is not sent this way (`values` says None): backends.py then sends the
statements as one query, with literals."""
from __future__ import annotations

import re
import select

from psycopg import errors
from psycopg.pq import ExecStatus, Format, PipelineStatus

UNTYPED, BOOLEAN, BIGINT, NUMERIC, DOUBLE = 0, 16, 20, 1700, 701
_BIGINT_RANGE = range(-2**63, 2**63)
_PARAMETER = re.compile(r"%%|%s")  # in a statement written for psycopg: a literal %, a parameter


def numbered(sql: str) -> str:
    """A statement written for psycopg (`%s` for each parameter, `%%` for a %) as libpq takes it
    (`$1`, `$2`...)."""
    numbers = iter(range(1, sql.count("%s") + 1))
    return _PARAMETER.sub(lambda found: "%" if found.group() == "%%" else f"${next(numbers)}", sql)


def values(args) -> tuple[tuple[int, ...], list[bytes | None]] | None:
    """Each value's type (an OID; 0: the server's to give) and its text, as UTF-8; None if one of
    them is not of the kinds above."""
    types: list[int] = []
    texts: list[bytes | None] = []
    for value in args:
        if value is None:
            types.append(UNTYPED)
            texts.append(None)
        elif isinstance(value, str):
            if "\x00" in value:
                return None
            types.append(UNTYPED)
            texts.append(value.encode())
        elif isinstance(value, bool):
            types.append(BOOLEAN)
            texts.append(b"t" if value else b"f")
        elif isinstance(value, int):
            types.append(BIGINT if value in _BIGINT_RANGE else NUMERIC)
            texts.append(str(int(value)).encode())
        elif isinstance(value, float):
            types.append(DOUBLE)
            texts.append(repr(float(value)).encode())
        else:
            return None
    return tuple(types), texts


def prepare(pgconn, name: bytes, sql: str, types: tuple[int, ...], encoding: str) -> None:
    """`sql` (with `$1`...) prepared as `name` on the connection, which is outside a pipeline and
    has nothing in flight; PostgreSQL's refusal raised as psycopg's error."""
    pgconn.send_prepare(name, sql.encode(), types)
    _flush(pgconn)
    refused = None
    while (result := _next_result(pgconn)) is not None:
        if result.status == ExecStatus.FATAL_ERROR and refused is None:
            refused = errors.error_from_result(result, encoding=encoding)
    if refused is not None:
        raise refused


def run(pgconn, statements: list[tuple[bytes | None, bytes | list[bytes | None]]], encoding: str) -> list:
    """Each statement, in order, in one pipeline and one round trip: `(name, values)` for one
    prepared, `(None, command)` for a command without parameters (BEGIN, COMMIT). Their results
    (libpq's), once every one has come; the first that failed is raised as psycopg's error (those
    after it were not run). Any other failure leaves the connection closed: it is in no state to
    be used again."""
    pgconn.enter_pipeline_mode()
    try:
        for name, given in statements:
            if name is None:
                pgconn.send_query_params(given, None)
            else:
                pgconn.send_query_prepared(name, given)
        pgconn.pipeline_sync()
        _flush(pgconn)
        results: list = []
        failed = None
        while True:
            result = _next_result(pgconn)
            if result is None:  # between one statement's results and the next's
                continue
            status = result.status
            if status == ExecStatus.PIPELINE_SYNC:
                break
            if status == ExecStatus.FATAL_ERROR and failed is None:
                failed = errors.error_from_result(result, encoding=encoding)
            results.append(result)
        pgconn.exit_pipeline_mode()
    except BaseException:
        if pgconn.pipeline_status != PipelineStatus.OFF:
            pgconn.finish()
        raise
    if failed is not None:
        raise failed
    return results


def rows(result, connection, loaders: dict, make_row) -> list:
    """The rows of a statement's result (libpq's, in text), each value read by the loader psycopg's
    adapters give its column's type on `connection` (kept in `loaders` by type), each row made by
    `make_row` from the list of its values (`tuple`, or one that names them: `names(result)`)."""
    columns = []
    for column in range(result.nfields):
        oid = result.ftype(column)
        loader = loaders.get(oid)
        if loader is None:
            loader = loaders[oid] = connection.adapters.get_loader(oid, Format.TEXT)(oid, connection)
        columns.append(loader.load)
    value = result.get_value
    return [make_row([None if (text := value(row, column)) is None else load(text)
                      for column, load in enumerate(columns)])
            for row in range(result.ntuples)]


def names(result) -> list[str]:
    return [result.fname(column).decode() for column in range(result.nfields)]


def _next_result(pgconn):
    while pgconn.is_busy():
        _wait(pgconn.socket, _READ)
        pgconn.consume_input()
    return pgconn.get_result()


def _flush(pgconn) -> None:
    while pgconn.flush():  # 1: some is left to send
        _wait(pgconn.socket, _WRITE)


if hasattr(select, "poll"):
    _READ, _WRITE = select.POLLIN, select.POLLOUT

    def _wait(socket: int, event: int) -> None:
        poller = select.poll()
        poller.register(socket, event)
        poller.poll()
else:  # Windows: select() takes sockets there, of any number
    _READ, _WRITE = 0, 1

    def _wait(socket: int, event: int) -> None:
        select.select([socket] if event == _READ else [], [socket] if event == _WRITE else [], [])
