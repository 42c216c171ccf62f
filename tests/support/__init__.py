"""What the tests share: the harness (the real app in process or on a socket), the real server
process, fakes (a clock, a scripted vehicle), clients and parsers (scrapes, OTLP, SOVD paths)."""
