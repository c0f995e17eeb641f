"""The dashboard (``agentkpi serve``): a Starlette app; every page has a JSON twin.

:func:`create_app` builds the ASGI app, :func:`serve` runs it with uvicorn.
The data of every page comes from :mod:`agentkpi.views` (below this package).
"""

from __future__ import annotations

from agentkpi.web.app import create_app, serve

__all__ = ["create_app", "serve"]
