"""Errors the registry raises, so callers can tell them from other failures."""


class RegistryError(RuntimeError):
    """A registry operation could not be done."""


class SchemaError(RegistryError):
    """The database holds a registry schema this version cannot use."""


class NotFound(RegistryError):
    """No attempt with that id."""


class RecordError(RegistryError):
    """A record file (experiments/records/...) is malformed; the message names file and key."""
