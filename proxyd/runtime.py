"""The live runtime state derived from one config snapshot; swapped whole on reload."""

from __future__ import annotations

import asyncio

import attrs

from proxyd.config import Config, ConfigChange
from proxyd.credentials.authdir import AuthDir
from proxyd.credentials.from_config import EntryCache, EntryCredentials, iter_credentials
from proxyd.credentials.manager import CredentialManager
from proxyd.credentials.model import Credential
from proxyd.credentials.selectors import PoolRotation, Selector, make_selector
from proxyd.models.registry import ModelRegistry

# Top-level config keys whose change means the credential set / model index must be rebuilt.
CREDENTIAL_KEYS = frozenset(
    {
        "openai-compatibility", "gemini-api-key", "claude-api-key", "codex-api-key", "vertex-api-key",
        "force-model-prefix", "proxy-url", "oauth-model-alias", "oauth-excluded-models",
    }
)
# Config keys the auth-dir credentials are built from (exclusions, aliases, the global proxy).
AUTH_FILE_KEYS = frozenset({"proxy-url", "oauth-model-alias", "oauth-excluded-models"})


@attrs.frozen
class Runtime:
    """Everything a request needs from the config, consistent for the whole request."""

    config: Config
    credentials: tuple[Credential, ...]
    registry: ModelRegistry
    selector: Selector
    api_keys: frozenset[str]
    manager: CredentialManager
    pools: PoolRotation = attrs.field(factory=PoolRotation)

    file_credentials: tuple[Credential, ...] = ()
    # What each config entry made: the next reload reuses the credentials of the entries it carries over.
    entry_cache: EntryCache = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def build(cls, config: Config, manager: CredentialManager | None = None,
              file_credentials: tuple[Credential, ...] = ()) -> Runtime:
        index = build_index(config, file_credentials)
        manager = manager or CredentialManager()
        _sync(manager, index.credentials)
        return cls(
            config=config,
            credentials=index.credentials,
            registry=index.registry,
            selector=make_selector(config.routing.strategy),
            api_keys=frozenset(config.api_keys),
            manager=manager,
            file_credentials=file_credentials,
            entry_cache=index.entry_cache,
        )

    def needs_index(self, change: ConfigChange, file_credentials: tuple[Credential, ...] | None = None) -> bool:
        """True when `change` means rebuilding the credential set and the model index."""
        return bool(change.changed & CREDENTIAL_KEYS) or file_credentials is not None

    def updated(self, change: ConfigChange, file_credentials: tuple[Credential, ...] | None = None,
                index: Index | None = None) -> Runtime:
        """The runtime for `change.new`, rebuilding only what the changed keys touch.

        `file_credentials` (the auth-dir's, when they were rebuilt for this change) replace the current ones;
        `index` is the credential set, registry and unchanged ids already worked out for this change (in slices,
        see :meth:`RuntimeHolder.on_config_change`).
        """
        config = change.new
        credentials, registry, cache = self.credentials, self.registry, self.entry_cache
        files = self.file_credentials if file_credentials is None else file_credentials
        if self.needs_index(change, file_credentials):
            unchanged = None
            if index is None:
                index = build_index(config, files, self.entry_cache)
            else:
                unchanged = index.unchanged
            credentials, registry, cache = index.credentials, index.registry, index.entry_cache
            _sync(self.manager, credentials, unchanged)  # unchanged credentials keep their cooldowns and counts
        selector = self.selector
        if config.routing.strategy != self.selector.name:
            selector = make_selector(config.routing.strategy)
        return Runtime(config=config, credentials=credentials, registry=registry, selector=selector,
                       api_keys=frozenset(config.api_keys), manager=self.manager, pools=self.pools,
                       file_credentials=files, entry_cache=cache)

    def with_file_credentials(self, file_credentials: tuple[Credential, ...]) -> Runtime:
        """The same config with a new auth-dir credential set (a file was added, changed or removed)."""
        config = self.config
        old_ids = {c.id for c in self.file_credentials}
        credentials = tuple(c for c in self.credentials if c.id not in old_ids) + file_credentials
        _sync(self.manager, credentials)
        return attrs.evolve(self, credentials=credentials, file_credentials=file_credentials,
                            registry=ModelRegistry(credentials, force_model_prefix=config.force_model_prefix))


@attrs.frozen
class Index:
    """A config's credential set and model registry, with what each config entry made (for the next build) and,
    when built for a reload, the ids whose credential did not change."""

    credentials: tuple[Credential, ...]
    registry: ModelRegistry
    entry_cache: EntryCache
    unchanged: frozenset[str] | None = None


def build_index(config: Config, files: tuple[Credential, ...], previous: EntryCache | None = None) -> Index:
    """The credential set and model registry of a config; `previous` is the entry cache of the runtime it
    replaces (its unchanged entries' credentials are reused)."""
    record: dict[tuple[str, int], EntryCredentials] = {}
    credentials = (*iter_credentials(config, previous, record), *files)
    return Index(credentials, ModelRegistry(credentials, force_model_prefix=config.force_model_prefix), record)


# Work done between two looks at the event loop while a reload builds its index.
_SLICE_S = 0.002


async def build_index_sliced(manager: CredentialManager, config: Config, files: tuple[Credential, ...],
                             previous: EntryCache | None = None) -> Index:
    """:func:`build_index` plus the unchanged credential ids, on the event loop in slices of about 2 ms: no
    worker thread competes with requests for the GIL, and none waits more than one slice."""
    loop = asyncio.get_running_loop()
    built: list[Credential] = []
    record: dict[tuple[str, int], EntryCredentials] = {}
    slice_ends = loop.time() + _SLICE_S
    for n, credential in enumerate(iter_credentials(config, previous, record), 1):
        built.append(credential)
        if n % 32 == 0 and loop.time() >= slice_ends:
            await asyncio.sleep(0)
            slice_ends = loop.time() + _SLICE_S
    credentials = (*built, *files)
    await asyncio.sleep(0)
    registry = ModelRegistry(credentials, force_model_prefix=config.force_model_prefix)
    await asyncio.sleep(0)
    return Index(credentials, registry, record, manager.unchanged(credentials))


def _sync(manager: CredentialManager, credentials: tuple[Credential, ...],
          unchanged: frozenset[str] | None = None) -> None:
    manager.sync(credentials, unchanged)
    for credential in credentials:
        if "file" in credential.options:  # auth files carry their `disabled` flag: listed, never selected
            state = manager.get(credential.id)
            if state is not None:
                state.disabled = bool(credential.options.get("disabled"))


class RuntimeHolder:
    """Owns the current Runtime; a ConfigStore subscriber swaps it atomically.

    With an `auth_dir`, its credentials join the config's, and `on_auth_change` (an AuthDir subscriber) swaps
    in a runtime with the new file credentials.
    """

    def __init__(self, config: Config, auth_dir: AuthDir | None = None) -> None:
        self.auth_dir = auth_dir
        self.current = Runtime.build(config, file_credentials=auth_dir.credentials() if auth_dir else ())

    async def on_config_change(self, change: ConfigChange) -> None:
        files = None
        if self.auth_dir is not None and change.changed & AUTH_FILE_KEYS:
            self.auth_dir.reconfigure(change.new)
            files = self.auth_dir.credentials()
        current = self.current
        index = None
        if current.needs_index(change, files):
            # Thousands of credentials and aliases take tens of milliseconds: built in slices while requests
            # keep flowing on the current runtime (reloads are serialised by the config store).
            index = await build_index_sliced(current.manager, change.new,
                                             current.file_credentials if files is None else files,
                                             current.entry_cache)
        if self.current is not current:  # the auth-dir swapped files meanwhile: build again, on the loop
            index = None
        self.current = self.current.updated(change, files, index)

    def on_auth_change(self) -> None:
        if self.auth_dir is not None:
            self.current = self.current.with_file_credentials(self.auth_dir.credentials())
