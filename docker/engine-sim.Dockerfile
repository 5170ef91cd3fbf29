# The AceStream engine simulator (aceorch.sim, standard library only) on the offline base image.
# Built by scripts/build-images.sh from a staged context holding aceorch/__init__.py and aceorch/sim/.
# On a machine that reaches a registry, BASE may be any image with python3 >= 3.11 (e.g. python:3.12-slim).
ARG BASE=aceorch/base:bookworm
FROM ${BASE}
# SIM_CACHE_DIR: where the real engine keeps its cache, so aceorch's ENGINE_CACHE_DIR default fits both.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SIM_CACHE_DIR=/root/.ACEStream/.acestream_cache
COPY aceorch/ /app/aceorch/
WORKDIR /app
EXPOSE 6878
ENTRYPOINT ["python3", "-m", "aceorch.sim", "engine"]
