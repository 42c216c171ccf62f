"""SOVD's resource model (ISO 17978) over the command pipeline.

Each vehicle is a SOVD server; its ECUs are the components. What a component offers
(data, operations, the session they need) comes from ``app.vehicles.description``; every
call that reaches the vehicle is a command (``calls``), so it has history, audit, metrics
and a response stream like any other. Modules: ``entities`` (vehicles and components),
``calls`` (run a command, wait, turn its end into SOVD's errors), ``faults``, ``data``,
``operations`` (executions), ``modes``; locks are ``app.services.locks``.
"""
