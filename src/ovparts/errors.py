"""Typed errors. Every message is one sentence a user can act on; the CLI prints it and exits with code 2."""

from __future__ import annotations

# The exit status of every CLI command when the input was at fault (typed error, failed data check).
EXIT_USER_ERROR = 2


class OvpartsError(Exception):
    """Base of every error ovparts raises on purpose (bad input, missing weights, ...)."""


class VocabularyError(OvpartsError, ValueError):
    """The vocabulary text or list could not be understood."""


class ImageError(OvpartsError, ValueError):
    """The image could not be read or is not an image."""


class UnknownModelError(OvpartsError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsNotFoundError(OvpartsError, FileNotFoundError):
    """Weights were neither on disk, in the Hugging Face cache nor reachable."""


class CheckpointError(OvpartsError, ValueError):
    """A checkpoint exists but is not in a format or shape this model accepts."""


class ConfigError(OvpartsError, ValueError):
    """A model configuration is invalid or unknown."""


class MaskError(OvpartsError, ValueError):
    """An object mask does not fit the image or the vocabulary."""


class DatasetError(OvpartsError, ValueError):
    """A dataset file is missing, unreadable or disagrees with the benchmark's class table."""
