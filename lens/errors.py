"""Domain exceptions: each says what was wrong, where, and what to do about it."""

from __future__ import annotations

from pathlib import Path


class ModelLensError(Exception):
    """Base class for every error this library raises on purpose."""


class CorpusError(ModelLensError):
    """A corpus file or directory cannot be read as leaderboard records."""

    def __init__(self, message: str, path: Path | str | None = None, row: int | None = None, field: str | None = None):
        where = ", ".join(
            part
            for part in (
                f"file {path}" if path is not None else "",
                f"row {row}" if row is not None else "",
                f"field {field!r}" if field else "",
            )
            if part
        )
        super().__init__(f"{message} ({where})" if where else message)
        self.path, self.row, self.field = path, row, field


class StoreError(ModelLensError):
    """The record store is missing, busy, or has no such snapshot."""


class IngestError(ModelLensError):
    """An ingest stopped before publishing: the previous snapshot stays current."""


class BatchCheckError(IngestError):
    """Batch-level expectations failed against the previous snapshot: the refresh must stop before training."""

    def __init__(self, message: str, validation: Path):
        super().__init__(f"{message}; details: {validation}")
        self.validation = validation


class UnknownSourceError(ModelLensError, KeyError):
    """A source name is not in the registry."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class SplitError(ModelLensError):
    """A split cannot be built, or a manifest does not match the corpus it is applied to."""


class UnknownRankerError(ModelLensError, KeyError):
    """A ranker name is not in the registry."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class SourceError(ModelLensError):
    """A remote source (the Hugging Face Hub) could not be read: names the URL and says what to try."""

    def __init__(self, message: str, url: str | None = None):
        super().__init__(f"{message} (url {url})" if url else message)
        self.url = url
