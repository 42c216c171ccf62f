"""SOVD's resource model over the command pipeline: entities (vehicles, components), calls (a
command run and its end as SOVD's errors), faults, data, operations, modes, described ECUs."""
