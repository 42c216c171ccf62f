"""ECU descriptions (PDX files), pure: intake (checks before odxtools), summary, codec and its
parameters, sovd_map (CDA's ODX-to-SOVD map), variants, fault_status; on disk: app.services."""
