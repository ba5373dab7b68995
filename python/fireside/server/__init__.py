"""An OpenAI-compatible HTTP server with continuous batching.

``create_app(model, parallel=4, api_key=...)`` returns a FastAPI app; ``fireside serve``
runs it on uvicorn. See :mod:`.engine` for how concurrent requests share one context.
"""

from fireside.server.app import create_app
from fireside.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
