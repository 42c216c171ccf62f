"""The SOVD tree (ISO 17978) under ``/sovd/vehicles/{vin}``: its route table entries (routes),
bodies (types, schemas, tree) and one handler module per resource; the work is app.services.sovd."""
