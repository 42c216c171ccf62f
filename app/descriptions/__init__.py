"""ECU descriptions (PDX files, issue #20), pure: the checks a file passes before odxtools
reads it (``intake``), what the API lists of a loaded one (``summary``), one layer's
services encoded and decoded (``codec``), CDA's ODX-to-SOVD mapping (``sovd_map``),
variant identification (``variants``) and the SOVD fault status keys (``fault_status``).
No I/O beyond the bytes or file handed in; the library on disk is
``app.services.descriptions``.
"""
