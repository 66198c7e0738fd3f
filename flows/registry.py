"""The model registry: which version each alias names, moving the aliases, and the audit trail on versions.

Aliases, not stages (STACK_NOTES): `@challenger` is the latest registered version, `@champion` the one serving loads,
`@previous` the champion it replaced. Every function here reads the aliases from the registry when it is called, so a
move a person makes in the MLflow UI is honoured exactly like one made by the promotion gate or the command line.
Versions are ints here (sqlite gives ints, REST strings: STACK_NOTES) and strings only at the client's boundary.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from flows.errors import RegistryError

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"


@dataclass(frozen=True)
class AliasMove:
    """Where `@champion` and `@previous` point after a promotion or a rollback."""

    champion: int
    previous: int | None


def aliases(client: MlflowClient, name: str) -> dict[str, int]:
    """Alias -> version of the registered model `name`; empty while nothing is registered."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {alias: int(version) for alias, version in model.aliases.items()}


def require_version(client: MlflowClient, name: str, version: int) -> None:
    """Raises RegistryError, listing the versions there are, when `name` has no version `version`."""
    try:
        client.get_model_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        known = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        raise RegistryError(
            f"registered model {name!r} has no version {version} (versions: {known or 'none yet'}); "
            "`modellens retrain` registers a new one"
        ) from None


def tag_version(client: MlflowClient, name: str, version: int, tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def set_challenger(client: MlflowClient, name: str, version: int) -> None:
    client.set_registered_model_alias(name, CHALLENGER, str(version))


def promote(client: MlflowClient, name: str, version: int, tags: Mapping[str, str]) -> AliasMove:
    """Tag `version` and make it `@champion`; the champion it replaces becomes `@previous`.

    Promoting the current champion again only adds the tags: `@previous` must keep naming a different version, or a
    rollback would have nowhere to go.
    """
    require_version(client, name, version)
    named = aliases(client, name)
    champion = named.get(CHAMPION)
    tag_version(client, name, version, tags)
    if champion == version:
        return AliasMove(version, named.get(PREVIOUS))
    if champion is not None:
        client.set_registered_model_alias(name, PREVIOUS, str(champion))
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return AliasMove(version, champion)


def rollback(client: MlflowClient, name: str) -> AliasMove:
    """Move `@champion` back to `@previous`; the version rolled back from becomes `@previous`.

    So a second rollback undoes the first. Both versions get tags saying what happened and when.

    Raises:
        RegistryError: there is no `@previous`, or it names the champion (nothing to roll back to).
    """
    named = aliases(client, name)
    champion, previous = named.get(CHAMPION), named.get(PREVIOUS)
    if previous is None or previous == champion:
        raise RegistryError(
            f"registered model {name!r} has no @previous version other than the champion ({champion}) to roll back "
            "to; `modellens promote --version N` makes any version the champion"
        )
    at = now()
    client.set_registered_model_alias(name, CHAMPION, str(previous))
    tag_version(
        client,
        name,
        previous,
        {
            "promotion.decision": "rollback",
            "promotion.reason": f"rolled back from version {champion}",
            "promotion.at": at,
        },
    )
    if champion is not None:
        client.set_registered_model_alias(name, PREVIOUS, str(champion))
        tag_version(client, name, champion, {"promotion.rolled_back_at": at})
    return AliasMove(previous, champion)
