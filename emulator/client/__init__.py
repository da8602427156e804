"""The client side: the control API's Python client (`EmulatorClient`), the command line, the
pytest plugin and what drives a payment from outside."""
from .control_client import CallbackWaitError, EmulatorClient, EmulatorError, Reply, Sandbox

__all__ = ["CallbackWaitError", "EmulatorClient", "EmulatorError", "Reply", "Sandbox"]
