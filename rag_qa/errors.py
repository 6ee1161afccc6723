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


class ManifestUnreadable(IndexCorruptError):
    """The index's manifest cannot be read; `rag-qa check --repair` may write it back from its copy."""


class ModelNotFoundError(RagQAError):
    """A model could not be loaded from the Hub, the cache or a local path."""


class StoreUnavailable(RagQAError):
    """The database server cannot be reached (restarting, or down): retry in a few seconds (HTTP 503)."""


class QuestionError(RagQAError, ValueError):
    """A question cannot be asked as given (for example, it is empty)."""


class ChangedMeanwhile(RagQAError):
    """A document's access groups changed between a caller's check and its change (HTTP 409): look again and retry."""


class NotFoundError(RagQAError, LookupError):
    """A document or page that is not in the index was asked for."""


DISK_FULL = (28, 27, 122)  # ENOSPC, EFBIG (a file-size limit), EDQUOT


def storage_problem(exc: BaseException, where: str) -> str | None:
    """What a storage failure means for the user of the index at `where`, or None when `exc` is
    not one: a full disk (what was committed is kept; free space and run again) or a damaged SQLite
    database (what `rag-qa check` and a backup can do)."""
    name = getattr(exc, "sqlite_errorname", "")
    errno = getattr(exc, "errno", None)
    if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR") or errno in DISK_FULL:  # IOERR: a write refused (a size limit)
        place = f" writing {exc.filename}" if getattr(exc, "filename", None) else ""
        return (f"the disk holding {where} is full or refused a write{place} ({exc}); everything committed before is kept and answers as before: "
                "free some space and run the same command again to finish")  # fmt: skip
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return (f"the SQLite database of {where} is damaged ({exc}); `rag-qa check --index {where}` says what can be rebuilt. "
                "If SQLite itself is damaged, restore the index folder from a backup or index the documents again")  # fmt: skip
    return None
