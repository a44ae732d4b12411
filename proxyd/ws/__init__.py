"""The Responses API over WebSocket: per-connection conversation state and the frame writer."""
