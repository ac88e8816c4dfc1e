# One image for every Minequest process; compose picks the command per service:
#   python -m gateway          (the default)
#   python -m services.auth    (and later services.mining, services.wallet, services.quests)
#
# Build:  docker build -t minequest:local .   (compose.yaml does this for you)
# Every dependency, transitive ones included, comes from the hash-locked
# requirements/ files (make lock): pip refuses any file that is not the one
# locked. The gRPC stubs (the git-ignored minequest/ package) are generated in
# the build stage by tools/gen_protos.py, with the generator's own lock. The
# runtime stage gets only the installed virtualenv: no compiler, no stub
# generator, no source tree.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src

# Dependencies first (cached until the locks change): the runtime lock into
# /opt/venv, the stub generator's lock into /opt/gen.
COPY requirements/runtime.txt requirements/protos.txt ./requirements/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes -r requirements/runtime.txt \
 && python -m venv /opt/gen \
 && /opt/gen/bin/pip install --require-hashes -r requirements/protos.txt
COPY pyproject.toml ./

COPY README.md ./
COPY protos ./protos
COPY tools ./tools
COPY runtime ./runtime
COPY services ./services
COPY gateway ./gateway
RUN /opt/gen/bin/python -m tools.gen_protos \
 && /opt/venv/bin/pip install --no-deps --no-build-isolation . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="minequest" \
      org.opencontainers.image.description="Minequest gateway and gRPC services (one image, command per service)"
RUN groupadd --system --gid 10001 minequest \
 && useradd --system --uid 10001 --gid minequest --home-dir /nonexistent --shell /usr/sbin/nologin minequest \
 && install -d -o minequest -g minequest -m 0700 /var/lib/minequest /var/lib/minequest/keys
COPY --from=build /opt/venv /opt/venv
# Mount points of the internal PKI (compose's one-shot `pki` service writes
# one volume per identity there; each service mounts its own read-only at
# /run/minequest/tls). Made here so that fresh volumes belong to minequest.
RUN /opt/venv/bin/python -c 'import os; from tools.pki import CA_DIR, IDENTITIES; \
[os.makedirs(f"/pki/{name}", mode=0o700, exist_ok=True) for name in (CA_DIR, *IDENTITIES)]' \
 && install -d -m 0700 /run/minequest/tls \
 && chown -R minequest:minequest /pki /run/minequest
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    AUTH_GRPC_HOST=0.0.0.0
WORKDIR /var/lib/minequest
USER minequest:minequest
# gateway HTTP, auth gRPC, auth metrics (compose publishes only 8080; gRPC is
# mutual TLS inside its network)
EXPOSE 8080 50051 9101
STOPSIGNAL SIGTERM
CMD ["python", "-m", "gateway"]
