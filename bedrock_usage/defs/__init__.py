"""The Dagster layer: wires the plain core (extraction, shaping, storage, connections)
to the orchestrator. One concern per module; `definitions.py` assembles them."""
