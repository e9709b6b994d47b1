"""The project's exceptions: one root, a few specific ones."""

from __future__ import annotations


class LambdastackError(Exception):
    """Root of every error lambdastack raises on purpose; its message is a sentence for a user."""


class ConfigError(LambdastackError):
    """The configuration file or an environment override is invalid."""


class ValidationError(LambdastackError):
    """Input failed validation; `errors` lists every bad field with its reason."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in errors))


class ServiceError(LambdastackError):
    """A service of the local stack could not be started, reached or stopped."""


class DataError(LambdastackError):
    """Input data is missing, empty or does not have the expected shape."""


class NoVersionError(LambdastackError):
    """No batch version has been published yet."""
