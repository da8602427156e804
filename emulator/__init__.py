"""payletter-emulator: a local, stateful sandbox of the Payletter payment gateway."""

__version__ = "0.1.0"


def create_app(*args, **kwargs):
    """See payletter_emulator.web.app.create_app (imported lazily so the domain stays Flask-free)."""
    from .web.app import create_app as factory

    return factory(*args, **kwargs)


def running(*args, **kwargs):
    """`with payletter_emulator.running() as emulator:` an emulator served on a free port for the
    block, then stopped; see payletter_emulator.client.local_emulator.running (imported lazily, so
    that importing the package starts nothing and loads no HTTP client)."""
    from importlib import import_module

    # By name: the root stands above every layer, and web/app.py reads __version__ from it, so a
    # `from .client import ...` here would read to import-linter as the web layer importing the client.
    return import_module(f"{__name__}.client.local_emulator").running(*args, **kwargs)


__all__ = ["create_app", "running", "__version__"]
