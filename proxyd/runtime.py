"""The live runtime state derived from one config snapshot; swapped whole on reload."""

from __future__ import annotations

import attrs

from proxyd.config import Config, ConfigChange
from proxyd.credentials.from_config import credentials_from_config
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

    @classmethod
    def build(cls, config: Config, manager: CredentialManager | None = None) -> Runtime:
        credentials = tuple(credentials_from_config(config))
        manager = manager or CredentialManager()
        manager.sync(credentials)
        return cls(
            config=config,
            credentials=credentials,
            registry=ModelRegistry(credentials, force_model_prefix=config.force_model_prefix),
            selector=make_selector(config.routing.strategy),
            api_keys=frozenset(config.api_keys),
            manager=manager,
        )

    def updated(self, change: ConfigChange) -> Runtime:
        """The runtime for `change.new`, rebuilding only what the changed keys touch."""
        config = change.new
        credentials, registry = self.credentials, self.registry
        if change.changed & CREDENTIAL_KEYS:
            credentials = tuple(credentials_from_config(config))
            registry = ModelRegistry(credentials, force_model_prefix=config.force_model_prefix)
            self.manager.sync(credentials)  # unchanged credentials keep their cooldowns and counts
        selector = self.selector
        if config.routing.strategy != self.selector.name:
            selector = make_selector(config.routing.strategy)
        return Runtime(config=config, credentials=credentials, registry=registry, selector=selector,
                       api_keys=frozenset(config.api_keys), manager=self.manager, pools=self.pools)


class RuntimeHolder:
    """Owns the current Runtime; a ConfigStore subscriber swaps it atomically."""

    def __init__(self, config: Config) -> None:
        self.current = Runtime.build(config)

    def on_config_change(self, change: ConfigChange) -> None:
        self.current = self.current.updated(change)
