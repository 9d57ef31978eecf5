"""The status web page and /metrics: a FastAPI app built from settings and a sessionmaker."""
