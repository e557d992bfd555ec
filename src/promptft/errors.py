"""One error family for every user mistake.

Each message says what was wrong *and* how to fix it; the CLI prints these without a traceback.
"""


class PromptFTError(Exception):
    """Base class for errors a user can fix (bad input, missing model, bad config)."""


class DataError(PromptFTError):
    """A data file or column is missing, malformed, or inconsistent."""


class TemplateError(PromptFTError):
    """A template is malformed (no slot, unknown field, ...)."""


class VerbalizerError(PromptFTError):
    """Label words are missing, duplicated, or not representable by the tokenizer."""


class ModelError(PromptFTError):
    """A model cannot be found, loaded, or is of an unsupported kind."""


class ConfigError(PromptFTError):
    """A configuration file or value is invalid."""


class RunDirError(PromptFTError):
    """A run directory would be overwritten or cannot be resumed."""
