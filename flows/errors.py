"""Errors of the platform layer; like `lens.errors`, each says what was wrong and what to do about it."""

from __future__ import annotations

from lens.errors import ModelLensError


class RegistryError(ModelLensError):
    """The model registry lacks what an operation needs: a version, or an alias to move."""


class RefreshError(ModelLensError):
    """A step of the nightly refresh failed; its report says which, and the previous good state is intact."""
