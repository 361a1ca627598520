"""What every DuckDB writer here shares: registering or appending a pandas frame, and
quoting a text as a SQL literal where DuckDB takes no parameter (ATTACH, LOAD, CREATE
SECRET, COMMENT, SQL built from our own constants)."""

from __future__ import annotations

import itertools

import duckdb
import pandas as pd

_frame_names = itertools.count()


def literal(text: str) -> str:
    """`text` as a single-quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def registered(connection: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> str:
    """Register `frame` with the connection under a fresh name of our own and return it. A
    registered frame lives until the connection closes: unregistering inside an aborted
    transaction would raise and hide the real error."""
    name = f"frame_{next(_frame_names)}"
    connection.register(name, frame)
    return name


def insert_frame(
    connection: duckdb.DuckDBPyConnection, table: str, columns: list[str], frame: pd.DataFrame
) -> None:
    """Append `frame` to `table` (names are ours, never a user's text: names are not
    parameters)."""
    name = registered(connection, frame)
    connection.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {name}"
    )
