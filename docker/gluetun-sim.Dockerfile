# The Gluetun simulator (aceorch.sim gluetun, standard library only) on the offline base image.
# Engines join its network namespace (network_mode container:<name>), so their ports are published here.
# Its HEALTHCHECK mirrors Gluetun's: unhealthy as soon as the simulated VPN is down.
ARG BASE=aceorch/base:bookworm
FROM ${BASE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY aceorch/ /app/aceorch/
WORKDIR /app
EXPOSE 8000
HEALTHCHECK --interval=2s --timeout=2s --retries=1 CMD ["python3", "-m", "aceorch.sim", "gluetun", "--healthcheck"]
ENTRYPOINT ["python3", "-m", "aceorch.sim", "gluetun"]
