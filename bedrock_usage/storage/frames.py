"""Appending a pandas frame to a DuckDB table, the one way every writer here does it."""

from __future__ import annotations

import itertools

import duckdb
import pandas as pd

_frame_names = itertools.count()


def insert_frame(
    connection: duckdb.DuckDBPyConnection, table: str, columns: list[str], frame: pd.DataFrame
) -> None:
    """Append `frame` to `table`. A registered frame lives until the connection closes;
    unregistering inside an aborted transaction would raise and hide the real error, so
    each gets a fresh name of our own (never a user's text: names are not parameters)."""
    name = f"frame_{next(_frame_names)}"
    connection.register(name, frame)
    connection.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {name}"
    )
