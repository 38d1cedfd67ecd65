"""ASGI entry point for uvicorn (`uvicorn serving.main:app_factory --factory`, or `sal serve`)."""

import sys

from fastapi import FastAPI

from serving.app import create_app
from serving.settings import get_settings


def app_factory() -> FastAPI:
    """Build the app from SAL_* settings; each uvicorn worker calls this once."""
    # Big batches are scored on a worker thread, which shares the GIL with the event loop; at
    # Python's default 5 ms switch interval a single lead arriving meanwhile waits up to 5 ms.
    sys.setswitchinterval(0.0005)
    return create_app(get_settings())
