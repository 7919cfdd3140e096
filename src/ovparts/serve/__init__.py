"""Web page and JSON HTTP API for ovparts in one process: ``create_app`` builds it, ``ovparts serve`` runs it.

Needs the ``demo`` extra (``pip install 'ovparts[demo]'``): FastAPI, uvicorn, python-multipart and Gradio.
"""

from __future__ import annotations

from .app import create_app, serve
from .limits import Limits
from .service import SegmentService, ServedModel

__all__ = ["Limits", "SegmentService", "ServedModel", "create_app", "serve"]
