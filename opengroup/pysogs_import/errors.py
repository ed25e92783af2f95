"""The one error of the pysogs import, shared by its modules so none imports the package."""


class PysogsImportError(RuntimeError):
    """The import cannot go ahead; the message says why (and nothing was written)."""
