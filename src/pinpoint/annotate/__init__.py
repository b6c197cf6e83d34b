"""The browser annotation tool: `pinpoint annotate DATA_DIR` serves a labelling page on 127.0.0.1.

`serve()` runs it until Ctrl+C; `make_server()` returns the bound server for tests and scripts.
"""

from pinpoint.annotate.server import make_server, serve

__all__ = ["make_server", "serve"]
