"""The HTTP service and web page (`rag-qa serve`); needs the `server` extra (FastAPI, uvicorn)."""

from rag_qa.server.app import create_app

__all__ = ["create_app"]
