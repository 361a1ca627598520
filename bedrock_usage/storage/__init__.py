"""The analysts' DuckDB warehouse: schema, and replacing windows of usage."""
