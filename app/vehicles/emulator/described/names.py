"""Parameters are recognised by their names, compared loosely: ``key``."""


def key(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()
