"""CLI commands of the benchmark and model selection (`promptft bench|models|select`).

Placeholder: registers nothing yet.
"""

import typer


def register(app: typer.Typer) -> None:
    """Add the `bench`, `models` and `select` commands to the main CLI app."""
