"""builder-api: the host-side build/run/logs/events/WebSocket API (see issue #6)."""
