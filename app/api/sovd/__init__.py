"""The SOVD resource tree (ISO 17978 / ASAM SOVD) under ``/sovd/vehicles/{vin}``.

``routes`` declares its endpoints (part of the one route table, ``app.api.routes``),
``types`` the bodies, and one module per resource holds the handlers: ``entities``
(version-info, the root, components and the grouping collections), ``faults``, ``data``,
``operations``, ``modes`` and ``locks``. The work is done by ``app.services.sovd``.
"""
