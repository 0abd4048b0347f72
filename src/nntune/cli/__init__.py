"""The command line: `nntune tune | predict | show | schema`, each a thin layer over `nntune.api`."""

from ._app import app, main

__all__ = ["app", "main"]
