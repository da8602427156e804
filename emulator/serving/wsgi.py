"""A WSGI entry for any WSGI server (`gunicorn payletter_emulator.serving.wsgi:app`), configured from the environment;
`payletter-emulator serve` does not use it (serving/bridge.py)."""
from ..config import Settings
from ..web.app import create_app

app = create_app(Settings.from_env())
