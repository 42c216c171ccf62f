"""The HTTP and WebSocket surface: the route table (routes) and its types (contract), routing,
decoding, error_bodies, openapi; one module per resource calls a service; ws streams answers."""
