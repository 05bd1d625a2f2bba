"""builder-api: the host-side build/run/logs/events/WebSocket API.

Configuration and security: docs/builder-api.md; relation to the upstream daemon:
docs/upstream.md#wire-protocol.
"""
