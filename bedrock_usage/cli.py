"""The `bedrock-usage` command line."""

from __future__ import annotations

import click

from .demo import run_demo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Amazon Bedrock usage from CloudWatch metrics into a daily DuckDB table."""


@main.command()
@click.option("--days", default=30, show_default=True, help="Days of history to sync first.")
def demo(days: int) -> None:
    """Run the whole pipeline on synthetic history in a local AWS emulator (no AWS account).

    Writes to BEDROCK_USAGE_HOME (default ./.bedrock_usage)."""
    run_demo(days)
