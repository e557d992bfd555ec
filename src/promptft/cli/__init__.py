"""The `promptft` command line (typer only): flags -> a typed config -> a recipe -> the printed result.

One module per group of commands: `train.py` (train), `use.py` (eval, predict), `models.py` (models,
select), `bench.py` (bench run, bench report); `app.py` holds the app, error handling and shared options,
`values.py` the parsers of flag values. Importing this package does not import torch (`promptft --help`
stays fast); each command imports what it needs when it runs.
"""

from promptft.cli import (  # noqa: F401  (each module adds its commands)
    bench,
    chat,
    compress,
    deploy,
    diagnostics,
    fairness,
    models,
    pet,
    prompts,
    push,
    report,
    train,
    use,
)
from promptft.cli.app import app

__all__ = ["app"]
