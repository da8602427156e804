"""The WSGI entry for gunicorn: `gunicorn payletter_emulator.wsgi:app`, configured from the environment."""
from .config import Settings
from .web.app import create_app

app = create_app(Settings.from_env())
