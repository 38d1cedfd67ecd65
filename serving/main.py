"""ASGI entry point for uvicorn (`uvicorn serving.main:app_factory --factory`, or `sal serve`)."""

import sys

from fastapi import FastAPI

from serving.app import create_app
from serving.settings import get_settings


def app_factory() -> FastAPI:
    """Build the app from SAL_* settings; each uvicorn worker calls this once."""
    # The scoring log's writer thread shares the GIL with the event loop; at Python's default 5 ms
    # switch interval a request that arrives while it holds the GIL waits up to 5 ms (measured: p99
    # 3.9 ms at 5 ms, 2.2 ms at 0.5 ms, same throughput).
    sys.setswitchinterval(0.0005)
    return create_app(get_settings())
