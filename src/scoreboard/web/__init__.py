"""The HTTP and WebSocket edge: parses requests, calls the service, maps errors to statuses."""
