"""payletter-emulator: a local, stateful sandbox of the Payletter payment gateway."""


def create_app(*args, **kwargs):
    """See payletter_emulator.web.app.create_app (imported lazily so the domain stays Flask-free)."""
    from .web.app import create_app as factory

    return factory(*args, **kwargs)


def running(*args, **kwargs):
    """`with payletter_emulator.running() as emulator:` an emulator served on a free port for the
    block, then stopped; see payletter_emulator.client.local_emulator.running (imported lazily, so
    that importing the package starts nothing and loads no HTTP client)."""
    from .client.local_emulator import running as served

    return served(*args, **kwargs)


def __getattr__(name: str):
    if name == "__version__":  # read when asked: importing the package reads no package metadata
        from .config import package_version

        return package_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app", "running", "__version__"]
