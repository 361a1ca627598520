"""Appending a pandas frame to a DuckDB table, the one way every writer here does it."""

from __future__ import annotations

import itertools

import duckdb
import pandas as pd

_frame_names = itertools.count()


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
