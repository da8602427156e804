"""Serving: the event loop that reads every request (uvicorn), the processes gunicorn forks for
`--workers N`, the request executor and TLS."""
