"""The recommendation HTTP service (FastAPI + uvicorn) serving the registry's champion."""
