"""The one error of the import, shared by its modules so none imports the package."""


class LegacyImportError(RuntimeError):
    """The import cannot go ahead; the message says why."""
