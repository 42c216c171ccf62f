"""ECU descriptions (PDX files), pure: intake (checks before odxtools), summary, codec and its
parameters, sovd_map (CDA's ODX-to-SOVD mapping), variants, fault_status; on disk: services."""
