"""protos/buf.gen.yaml: consumers' stubs from local plugins, built and checked.

``buf generate`` with the Python plugin wrapper (grpcio-tools) and
``@bufbuild/protoc-gen-es``; the Python output must compile and the
TypeScript type-check with the pinned ``tsc``. Skipped, saying why, where
``npm install`` has not been run (no buf, protoc-gen-es or tsc).
"""

from __future__ import annotations

import py_compile
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "node_modules" / ".bin"
TOOLS = [BIN / "buf", BIN / "protoc-gen-es", BIN / "tsc"]
SERVICES = ("auth", "mining", "quests", "wallet")

pytestmark = pytest.mark.skipif(
    not all(tool.exists() for tool in TOOLS),
    reason="buf, protoc-gen-es or tsc missing: run npm install (package.json pins them)",
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("buf-gen")
    done = subprocess.run(
        [
            str(BIN / "buf"),
            "generate",
            "protos",
            "--template",
            "protos/buf.gen.yaml",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "does not support required features" not in done.stderr
    return out


def test_python_messages_stubs_and_grpc_services_are_generated(generated: Path) -> None:
    for service in SERVICES:
        folder = generated / "python" / "minequest" / service / "v1"
        for name in (f"{service}_pb2.py", f"{service}_pb2.pyi", f"{service}_pb2_grpc.py"):
            assert (folder / name).is_file(), f"{name} not generated"
        py_compile.compile(str(folder / f"{service}_pb2.py"), doraise=True)
        grpc = folder / f"{service}_pb2_grpc.py"
        py_compile.compile(str(grpc), doraise=True)
        assert f"class {service.capitalize()}ServiceStub" in grpc.read_text()


def test_typescript_stubs_are_generated_and_type_check(generated: Path) -> None:
    sources = sorted((generated / "typescript").rglob("*_pb.ts"))
    assert {path.stem for path in sources} >= {f"{service}_pb" for service in SERVICES}
    mining = (generated / "typescript" / "minequest" / "mining" / "v1" / "mining_pb.ts").read_text()
    assert "export const MiningService" in mining
    (generated / "node_modules").symlink_to(ROOT / "node_modules")
    done = subprocess.run(
        [
            str(BIN / "tsc"),
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--skipLibCheck",
            *map(str, sources),
        ],
        cwd=generated,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
