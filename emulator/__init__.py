"""payletter-emulator: a local, stateful sandbox of the Payletter payment gateway."""

__version__ = "0.1.0"


def create_app(*args, **kwargs):
    """See payletter_emulator.web.app.create_app (imported lazily so the domain stays Flask-free)."""
    from .web.app import create_app as factory

    return factory(*args, **kwargs)


__all__ = ["create_app", "__version__"]
