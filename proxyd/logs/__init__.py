"""The daemon's logs for the management API: the line ring, ``main.log``, request dumps (management.md §6)."""

from proxyd.logs.request_log import NULL_CAPTURE, NullCapture, RequestLogCapture, RequestLogWriter
from proxyd.logs.service import LOGS, LogsService, begin_capture, begin_websocket_session, logs_ctx, request_logs
from proxyd.logs.ws_session import WebSocketSessionCapture

__all__ = ["LOGS", "NULL_CAPTURE", "LogsService", "NullCapture", "RequestLogCapture", "RequestLogWriter",
           "WebSocketSessionCapture", "begin_capture", "begin_websocket_session", "logs_ctx", "request_logs"]
