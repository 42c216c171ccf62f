"""HTTP and WebSocket handlers: parse, authorize, call a service, shape the response."""
