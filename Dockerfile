# payletter-emulator: `payletter-emulator serve` (uvicorn, a process per core), as a non-root user, its state in
# the /data volume. Every setting comes from PAYLETTER_EMULATOR_* (docs/configuration.md).
# The base is pinned by tag and by digest (the multi-platform index), so a rebuild gets the same
# Python and Debian. To update: pick the newest python:3.11.X-slim-bookworm tag, read its digest with
# `docker buildx imagetools inspect python:3.11.X-slim-bookworm` (the "Digest:" line), and change both.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PAYLETTER_EMULATOR_HOST=0.0.0.0 \
    PAYLETTER_EMULATOR_PORT=8080 \
    PAYLETTER_EMULATOR_DB=/data/payletter-emulator.db

WORKDIR /app
# What the package's build reads: pyproject.toml's readme and the wheel's force-included files too.
COPY pyproject.toml hatch_build.py ./
COPY docs/pypi.md docs/fidelity.md ./docs/
COPY emulator ./emulator
COPY schemas ./schemas
COPY scenarios ./scenarios
COPY probes ./probes
# pip compiles the bytecode as it installs, so a start imports without compiling anything.
RUN pip install --no-cache-dir './[postgres]' \
    && useradd --system --uid 10001 --user-group --home-dir /data emulator \
    && mkdir -p /data && chown 10001:10001 /data

USER 10001:10001
# Relative paths, and the CA of a database that is not a file (PostgreSQL), land in the volume.
WORKDIR /data
VOLUME /data
EXPOSE 8080
# `payletter-emulator health` asks the server this container runs (its port, and HTTPS when
# PAYLETTER_EMULATOR_TLS is on) and exits 0 once it answers; --insecure: the probe asks whether the
# server answers, not who it is (a certificate of one's own may not name 127.0.0.1).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --start-interval=1s --retries=3 \
    CMD ["payletter-emulator", "health", "--insecure", "--timeout", "2"]
# A process per core the container may use, sharing the database (PAYLETTER_EMULATOR_WORKERS sets
# how many).
CMD ["payletter-emulator", "serve"]
