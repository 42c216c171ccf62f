"""Vehicle connectors: how a diagnostic request reaches a vehicle and its answer comes back."""
