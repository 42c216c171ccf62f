"""SOVD's resource model (ISO 17978) over the command pipeline.

Each vehicle is a SOVD server; its ECUs are the components. An ECU bound to a description
(``ecus[].description``) has the tree its description gives by the mapping of the
Eclipse OpenSOVD CDA (``described``); an unbound one the generic UDS tree: the ISO
14229-1 identification data (``data``), its faults by ReadDTC (``faults``) and its
diagnostic session (``modes``), no operations. Every call that reaches the vehicle is a
command (``calls``), so it has history, audit, metrics and a response stream like any
other. Modules: ``entities`` (vehicles and components), ``calls`` (run a command, wait,
turn its end into SOVD's errors), ``faults``, ``data``, ``modes``, ``described`` (a bound
ECU's tree) over ``described_calls`` (its layer, preconditions and sending), ``operations``
(executions); locks are ``app.services.locks``.
"""
