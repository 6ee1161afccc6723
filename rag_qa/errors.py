"""The exceptions rag-qa raises: one hierarchy so callers can catch `RagQAError`."""


class RagQAError(Exception):
    """Base class for every error rag-qa raises on purpose."""


class ConfigError(RagQAError, ValueError):
    """An argument or setting is invalid; the message says what would be valid."""


class LoadError(RagQAError):
    """A file could not be read; `path` and `reason` say which and why."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class IndexMismatchError(RagQAError):
    """The index was built with a different embedding model, dimension or settings."""


class IndexCorruptError(RagQAError):
    """The index folder is not a readable rag-qa index."""


class ModelNotFoundError(RagQAError):
    """A model could not be loaded from the Hub, the cache or a local path."""


class QuestionError(RagQAError, ValueError):
    """A question cannot be asked as given (for example, it is empty)."""


class NotFoundError(RagQAError, LookupError):
    """A document or page that is not in the index was asked for."""
