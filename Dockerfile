# payletter-emulator under gunicorn. State lives in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080 \
    PAYLETTER_EMULATOR_DB=/data/payletter-emulator.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY emulator ./emulator
COPY schemas ./schemas
COPY scenarios ./scenarios
RUN pip install --no-cache-dir '.[postgres]' \
    && useradd --system --uid 10001 --home-dir /data emulator \
    && mkdir -p /data && chown emulator /data

USER emulator
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/_emulator/health', timeout=2)"]
# gunicorn binds 0.0.0.0:$PORT when no --bind is given; one worker with threads keeps one
# SQLite connection per process.
CMD ["gunicorn", "--worker-class", "gthread", "--workers", "1", "--threads", "8", "--no-control-socket", "--keep-alive", "75", "--access-logfile", "-", "emulator.wsgi:app"]
