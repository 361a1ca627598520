"""What every DuckDB writer here shares: registering or appending a pandas frame,
quoting a text as a SQL literal where DuckDB takes no parameter (ATTACH, LOAD, CREATE
SECRET, COMMENT, SQL built from our own constants), and one connection's window at a
time with DuckDB's cache shed between two (`memory.shed_cache`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import TypeVar

import duckdb
import pandas as pd

from .memory import shed_cache

_frame_names = itertools.count()
K = TypeVar("K")
V = TypeVar("V")


def literal(text: str) -> str:
    """`text` as a single-quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def registered(db: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> str:
    """Register `frame` with the connection under a fresh name of our own and return it. A
    registered frame lives until the connection closes: unregistering inside an aborted
    transaction would raise and hide the real error."""
    name = f"frame_{next(_frame_names)}"
    db.register(name, frame)
    return name


def insert_frame(
    db: duckdb.DuckDBPyConnection, table: str, columns: list[str], frame: pd.DataFrame
) -> None:
    """Append `frame` to `table` (names are ours, never a user's text: names are not
    parameters)."""
    name = registered(db, frame)
    db.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {name}"
    )


def one_at_a_time(db: duckdb.DuckDBPyConnection, windows: Mapping[K, V]) -> Iterator[tuple[K, V]]:
    """Each connection's window in turn, DuckDB's cache shed between two of them: a run
    over many connections then holds one window's memory at a time, and a run of one
    connection pays nothing."""
    for turn, window in enumerate(windows.items()):
        if turn:
            shed_cache(db)
        yield window
