"""A protoc plugin for buf: Python messages, type stubs and gRPC stubs from grpcio-tools.

grpcio-tools ships protoc and the gRPC Python generator built into one Python
module (``python -m grpc_tools.protoc``), not as the ``protoc-gen-*``
executables ``buf generate`` runs (grpc/grpc#26125). This wrapper is that
executable: it reads buf's ``CodeGeneratorRequest`` on stdin, hands the
request's files to the bundled protoc (``--python_out``, ``--pyi_out``,
``--grpc_python_out``) and answers the files it wrote as a
``CodeGeneratorResponse``. ``protos/buf.gen.yaml`` runs it as
``python -m tools.protoc_gen_python``. The runtime stubs are still made by
``make protos`` (tools/gen_protos.py), not by this.

The plugin parameter picks the outputs: ``python``, ``pyi``, ``grpc``
(comma-separated; all three by default).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc

OUTPUTS = {"python": "--python_out", "pyi": "--pyi_out", "grpc": "--grpc_python_out"}


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    wanted = [name.strip() for name in request.parameter.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(OUTPUTS))
    if unknown:
        response.error = f"unknown output(s) {unknown}; choose from {sorted(OUTPUTS)}"
        return response
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        descriptors = root / "request.binpb"
        descriptors.write_bytes(
            descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString()
        )
        out = root / "out"
        out.mkdir()
        args = [
            "grpc_tools.protoc",
            f"--descriptor_set_in={descriptors}",
            *(f"{OUTPUTS[name]}={out}" for name in wanted or OUTPUTS),
            *request.file_to_generate,
        ]
        if protoc.main(args) != 0:
            response.error = "grpc_tools.protoc failed (see its message above)"
            return response
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            response.file.add(name=str(path.relative_to(out)), content=path.read_text("utf-8"))
    return response


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
