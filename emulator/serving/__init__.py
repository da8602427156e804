"""Serving: the event loop that reads every request (uvicorn), the process supervisor, the request
threads and the TLS front."""
