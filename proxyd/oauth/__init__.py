"""OAuth logins of the management API (management.md §3.12, routing.md §3.4-3.5).

One module per provider flow (claude, codex, gemini_cli, antigravity, iflow, device: qwen and kimi), the
session store, PKCE, the callback hand-off file, the `is_webui` redirect listener, and the service that runs the
logins in background tasks. Every upstream address is in `endpoints.OAuthEndpoints` (replaceable per app).
"""

from proxyd.oauth.endpoints import DEFAULT_ENDPOINTS, OAuthEndpoints
from proxyd.oauth.service import OAUTH, OAuthService, setup_oauth

__all__ = ["DEFAULT_ENDPOINTS", "OAUTH", "OAuthEndpoints", "OAuthService", "setup_oauth"]
