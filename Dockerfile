# One image for every Minequest process; compose picks the command per service:
#   python -m gateway          (the default)
#   python -m services.auth    (and later services.mining, services.wallet, services.quests)
#
# Build:  docker build -t minequest:local .   (compose.yaml does this for you)
# The gRPC stubs (the git-ignored minequest/ package) are generated in the
# build stage by tools/gen_protos.py, with grpcio-tools and mypy-protobuf at
# the versions pinned in pyproject.toml. The runtime stage gets only the
# installed virtualenv: no compiler, no stub generator, no source tree.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src

# Dependencies first (cached until pyproject.toml changes): the pinned
# runtime dependencies into /opt/venv, the stub generator into /opt/gen.
COPY pyproject.toml ./
RUN python -c 'import tomllib; \
project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
runtime = project["dependencies"]; dev = project["optional-dependencies"]["dev"]; \
gen = [d for d in runtime + dev if d.startswith(("grpcio-tools==", "mypy-protobuf=="))]; \
open("/tmp/runtime.txt", "w").write("\n".join(runtime) + "\n"); \
open("/tmp/gen.txt", "w").write("\n".join(gen) + "\n")'
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -r /tmp/runtime.txt \
 && python -m venv /opt/gen \
 && /opt/gen/bin/pip install -r /tmp/gen.txt

COPY README.md ./
COPY protos ./protos
COPY tools ./tools
COPY runtime ./runtime
COPY services ./services
COPY gateway ./gateway
RUN /opt/gen/bin/python -m tools.gen_protos \
 && /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="minequest" \
      org.opencontainers.image.description="Minequest gateway and gRPC services (one image, command per service)"
RUN groupadd --system --gid 10001 minequest \
 && useradd --system --uid 10001 --gid minequest --home-dir /nonexistent --shell /usr/sbin/nologin minequest \
 && install -d -o minequest -g minequest -m 0700 /var/lib/minequest /var/lib/minequest/keys
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    AUTH_GRPC_HOST=0.0.0.0
WORKDIR /var/lib/minequest
USER minequest:minequest
# gateway HTTP, auth gRPC, auth metrics
EXPOSE 8080 50051 9101
STOPSIGNAL SIGTERM
CMD ["python", "-m", "gateway"]
