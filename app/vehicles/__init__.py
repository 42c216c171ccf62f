"""How a diagnostic request reaches a vehicle and its answer comes back: connectors (simulator,
DoIP settings, wire, link), UDS codecs, conversations and commands, addresses; emulator/, pdx/."""
