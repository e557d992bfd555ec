"""The package version: the one place it is written (pyproject.toml reads it; `promptft --version` shows it).
Bump it with each release and add the release's section to CHANGELOG.md."""

__version__ = "0.1.0"
