"""How a diagnostic request reaches a vehicle and its answer comes back: connectors (simulator; DoIP
settings, wire, jobs, link, observer), UDS codecs, conversations, commands; emulator/, pdx/."""
