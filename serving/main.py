"""ASGI entry point for uvicorn (`uvicorn serving.main:app_factory --factory`, or `sal serve`)."""

from fastapi import FastAPI

from serving.app import create_app
from serving.settings import get_settings


def app_factory() -> FastAPI:
    """Build the app from SAL_* settings; each uvicorn worker calls this once."""
    return create_app(get_settings())
