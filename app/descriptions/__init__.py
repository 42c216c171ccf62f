"""ECU descriptions (PDX files, issue #20): the checks a file passes before odxtools
reads it (``intake``) and what the API lists of a loaded one (``summary``). No I/O
beyond the bytes or file handed in; the library on disk is ``app.services.descriptions``.
"""
