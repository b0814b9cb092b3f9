"""One exception hierarchy, rooted at :class:`PreprocError`.

Every message says what was given and what was expected, so that a user can fix the
call without reading our code.
"""

from __future__ import annotations


class PreprocError(Exception):
    """Base class of every error raised on purpose by preproc."""


# --- bad input -----------------------------------------------------------------------
class InputError(PreprocError, ValueError):
    """The image given to preproc cannot be used as it is."""


class EmptyImageError(InputError):
    """The image has a zero-sized side."""


class ShapeError(InputError):
    """Wrong number of dimensions or channels."""


class DtypeError(InputError, TypeError):
    """An array or tensor of a dtype we do not accept."""


class ValueRangeError(InputError):
    """NaN/inf, or float values far outside [0, 1]."""


class UnsupportedInputError(InputError, TypeError):
    """An object of a type we do not know how to read as an image."""


class ImageFileError(InputError):
    """A path that cannot be read as an image."""


class ImageNotFoundError(ImageFileError, FileNotFoundError):
    """The path does not exist."""


class NotAnImageError(ImageFileError):
    """The file exists but is not an image format we can decode."""


class CorruptImageError(ImageFileError):
    """The file is an image but truncated or damaged."""


class ImageTooLargeError(InputError):
    """The image (or a file header) announces more pixels than the configured limit."""


# --- configuration -------------------------------------------------------------------
class ConfigError(PreprocError, ValueError):
    """An unknown task, option, backend, or an option value out of range."""


class UnknownTaskError(ConfigError, KeyError):
    """No preset of that name."""

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that.
        return str(self.args[0]) if self.args else ""


class UnknownOptionError(ConfigError, TypeError):
    """A keyword that no preset or backend accepts."""


class UnknownUpscalerError(ConfigError, KeyError):
    """No upscaler registered under that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# --- models and external tools -------------------------------------------------------
class ModelUnavailableError(PreprocError, RuntimeError):
    """Weights or a model package cannot be found; the message says how to get them."""


class WeightsError(PreprocError, RuntimeError):
    """Weights were found but are corrupt, truncated or of an unknown architecture."""


class RecognizerUnavailableError(PreprocError, RuntimeError):
    """A recognizer (Tesseract, a face embedder) is not installed; the message says what to install."""


class DatasetError(PreprocError, ValueError):
    """A dataset folder or manifest that cannot be read."""
