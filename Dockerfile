# payletter-emulator: `payletter-emulator serve` under gunicorn, as a non-root user, its state in
# the /data volume. Every setting comes from PAYLETTER_EMULATOR_* (README, "Configuration").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PAYLETTER_EMULATOR_HOST=0.0.0.0 \
    PAYLETTER_EMULATOR_PORT=8080 \
    PAYLETTER_EMULATOR_WORKERS=1 \
    PAYLETTER_EMULATOR_DB=/data/payletter-emulator.db

WORKDIR /app
COPY pyproject.toml README.md ./
COPY emulator ./emulator
COPY schemas ./schemas
COPY scenarios ./scenarios
# pip compiles the bytecode as it installs, so a start imports without compiling anything.
RUN pip install --no-cache-dir './[postgres]' \
    && useradd --system --uid 10001 --user-group --home-dir /data emulator \
    && mkdir -p /data && chown 10001:10001 /data

USER 10001:10001
# Relative paths, and the CA of a database that is not a file (PostgreSQL), land in the volume.
WORKDIR /data
VOLUME /data
EXPOSE 8080
# The probe asks the server this container runs, over HTTPS when PAYLETTER_EMULATOR_TLS is on
# (without checking the certificate: it asks whether the server answers, not who it is).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --start-interval=1s --retries=3 \
    CMD ["python", "-c", "import ssl, urllib.request; from emulator import tls; from emulator.config import Settings; s = Settings.from_env(); urllib.request.urlopen(f'{tls.scheme(s)}://127.0.0.1:{s.port}/_emulator/health', timeout=2, context=ssl._create_unverified_context())"]
# One gunicorn worker (PAYLETTER_EMULATOR_WORKERS) with threads; more workers share the database.
CMD ["payletter-emulator", "serve"]
