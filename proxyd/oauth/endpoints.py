"""Every upstream URL, client id, port and timing the OAuth login flows use (routing.md §3.4-3.5).

The defaults are the reference's (CLIProxyAPI v6.9.0). DECISIONS 19: all of them can be replaced, so tests
point the flows at fake servers on 127.0.0.1 (``app[OAUTH].endpoints = attrs.evolve(...)``) and private
mirrors can be used.
"""

from __future__ import annotations

import attrs

__all__ = ["ANTIGRAVITY_SCOPES", "DEFAULT_ENDPOINTS", "GEMINI_SCOPES", "OAuthEndpoints"]

GEMINI_SCOPES = (
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
)
ANTIGRAVITY_SCOPES = (
    *GEMINI_SCOPES,
    "https://www.googleapis.com/auth/cclog",
    "https://www.googleapis.com/auth/experimentsandconfigs",
)


@attrs.frozen
class OAuthEndpoints:
    """Upstream addresses and timings of the login flows; one immutable value, replaced whole."""

    # Claude (PKCE, JSON token exchange)
    claude_authorize: str = "https://claude.ai/oauth/authorize"
    claude_token: str = "https://api.anthropic.com/v1/oauth/token"
    claude_client_id: str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
    claude_redirect: str = "http://localhost:54545/callback"
    # Codex / OpenAI (PKCE, form token exchange)
    codex_authorize: str = "https://auth.openai.com/oauth/authorize"
    codex_token: str = "https://auth.openai.com/oauth/token"
    codex_client_id: str = "app_EMoamEEZ73f0CkXaXp7hrann"
    codex_redirect: str = "http://localhost:1455/auth/callback"
    # Google (Gemini CLI and Antigravity share the token and userinfo endpoints)
    gemini_authorize: str = "https://accounts.google.com/o/oauth2/auth"
    antigravity_authorize: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token: str = "https://oauth2.googleapis.com/token"
    google_userinfo: str = "https://www.googleapis.com/oauth2/v1/userinfo?alt=json"
    gemini_client_id: str = "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com"
    gemini_client_secret: str = "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"
    antigravity_client_id: str = "1071006060591-tmhssin2h21lcre235vtolojh4g403ep.apps.googleusercontent.com"
    antigravity_client_secret: str = "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"
    cloudcode: str = "https://cloudcode-pa.googleapis.com"  # + /v1internal:<method>
    resource_manager: str = "https://cloudresourcemanager.googleapis.com"  # + /v1/projects
    service_usage: str = "https://serviceusage.googleapis.com"  # + /v1/projects/<p>/services/<s>
    # iFlow (authorization code with Basic client auth; cookie login against the platform API)
    iflow_authorize: str = "https://iflow.cn/oauth"
    iflow_token: str = "https://iflow.cn/oauth/token"
    iflow_userinfo: str = "https://iflow.cn/api/oauth/getUserInfo"
    iflow_apikey: str = "https://platform.iflow.cn/api/openapi/apikey"
    iflow_client_id: str = "10009311001"
    iflow_client_secret: str = "4Z3YjXycVsQvyGF1etiNlIBB4RsqSDtW"
    # Qwen (device flow with PKCE)
    qwen_device: str = "https://chat.qwen.ai/api/v1/oauth2/device/code"
    qwen_token: str = "https://chat.qwen.ai/api/v1/oauth2/token"
    qwen_client_id: str = "f0304373b74a44d2b584a3fb70ca9e56"
    # Kimi (RFC 8628 device flow)
    kimi_device: str = "https://auth.kimi.com/api/oauth/device_authorization"
    kimi_token: str = "https://auth.kimi.com/api/oauth/token"
    kimi_client_id: str = "17e5f671-d194-4dfb-9706-5516cb48c098"

    # Local redirect listeners (is_webui): provider -> port. The redirect URIs above name the same ports.
    callback_ports: dict[str, int] = attrs.field(factory=lambda: {
        "anthropic": 54545, "codex": 1455, "gemini": 8085, "antigravity": 51121, "iflow": 11451})

    # Timings (seconds)
    callback_timeout: float = 300.0  # waiting for the hand-off file
    callback_poll: float = 0.5
    http_timeout: float = 30.0
    qwen_poll: float = 5.0
    qwen_poll_max: float = 10.0
    qwen_max_attempts: int = 60
    kimi_min_interval: float = 5.0
    kimi_max_duration: float = 900.0
    onboard_poll: float = 5.0  # Gemini onboardUser with a project
    auto_onboard_poll: float = 2.0  # Gemini / Antigravity onboardUser without a project
    auto_onboard_timeout: float = 30.0
    onboard_timeout: float = 300.0  # proxyd bound on the (unbounded in the reference) onboarding loop

    def redirect_for(self, provider: str) -> str:
        """The redirect URI a provider's authorize URL carries."""
        ports = self.callback_ports
        if provider == "anthropic":
            return self.claude_redirect
        if provider == "codex":
            return self.codex_redirect
        if provider == "gemini":
            return f"http://localhost:{ports['gemini']}/oauth2callback"
        if provider == "antigravity":
            return f"http://localhost:{ports['antigravity']}/oauth-callback"
        if provider == "iflow":
            return f"http://localhost:{ports['iflow']}/oauth2callback"
        raise KeyError(provider)


DEFAULT_ENDPOINTS = OAuthEndpoints()
