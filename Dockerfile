# syntax=docker/dockerfile:1
# The aceorch orchestrator image (`python3 -m aceorch serve`, working directory /app).
#
# Two ways to build it, from this one file:
#   online  (default)   docker build -t aceorch/orchestrator:latest .
#                       BASE=python:3.12-slim; the build stage pip-installs the project from the context.
#   offline             scripts/build-orchestrator-image.sh
#                       BASE=aceorch/base:bookworm (no pip, no network) and SITE=prebuilt: the site-packages
#                       were installed on the host (the venv's pip, `--target`) into a staged context's
#                       prebuilt-site/ folder, and are only copied here. The host's Python minor version
#                       must match the base image's (the script checks it).
# Both paths use the classic builder and BuildKit alike: the choice is one shell `if`, not a stage switch,
# because the classic builder runs every stage even when the target does not need it.
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
ARG SITE=pip
COPY . /src
RUN set -eu; \
    if [ "$SITE" = "prebuilt" ]; then \
        test -d /src/prebuilt-site/aceorch || { echo "SITE=prebuilt needs prebuilt-site/ in the context" >&2; exit 1; }; \
        mkdir -p /opt/aceorch; cp -a /src/prebuilt-site /opt/aceorch/site; \
    elif [ "$SITE" = "pip" ]; then \
        python3 -m pip install --no-cache-dir --disable-pip-version-check --target /opt/aceorch/site /src; \
    else \
        echo "SITE must be pip or prebuilt, not '$SITE'" >&2; exit 1; \
    fi; \
    rm -rf /opt/aceorch/site/bin; \
    python3 -m compileall -q -j 0 /opt/aceorch/site >/dev/null || true; \
    python3 -c "import sys; sys.path.insert(0, '/opt/aceorch/site'); import aceorch.cli"

FROM ${BASE}
# ACEORCH_IN_CONTAINER=1 makes ENGINE_ADVERTISE_HOST=auto advertise engines by container (or Gluetun) name
# and container port instead of 127.0.0.1 and the host port (config.md).
ENV PYTHONPATH=/opt/aceorch/site \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ACEORCH_IN_CONTAINER=1
COPY --from=build /opt/aceorch/site /opt/aceorch/site
# A non-root user for `docker run`; docker-compose runs the service as the host user instead
# (user: UID:GID, plus the Docker socket's group), so /app (orchestrator.db) and /app/debug_logs are
# writable by any uid, like /tmp (sticky bit: a user cannot delete another's files).
RUN set -eu; \
    groupadd --gid 1000 aceorch; \
    useradd --uid 1000 --gid 1000 --home-dir /app --no-create-home --shell /usr/sbin/nologin aceorch; \
    mkdir -p /app/debug_logs; \
    chown aceorch:aceorch /app /app/debug_logs; \
    chmod 1777 /app /app/debug_logs
WORKDIR /app
USER aceorch
VOLUME /app/debug_logs
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('APP_PORT') or '8000'), timeout=3)"]
CMD ["python3", "-m", "aceorch", "serve"]
