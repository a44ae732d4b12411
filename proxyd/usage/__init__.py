"""Usage statistics (management.md §5, DECISIONS 12): aggregates, the details ring, the snapshot file."""

from proxyd.usage.service import USAGE, UsageService, usage_ctx
from proxyd.usage.stats import UsageStats

__all__ = ["USAGE", "UsageService", "UsageStats", "usage_ctx"]
