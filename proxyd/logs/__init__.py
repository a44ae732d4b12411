"""The daemon's logs for the management API: the line ring, ``main.log``, request dumps (management.md §6)."""

from proxyd.logs.request_log import RequestLogCapture, RequestLogWriter
from proxyd.logs.service import LOGS, LogsService, logs_ctx, request_logs

__all__ = ["LOGS", "LogsService", "RequestLogCapture", "RequestLogWriter", "logs_ctx", "request_logs"]
