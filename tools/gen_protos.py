"""Generate every Python stub from ``protos/`` into the ``minequest`` package.

Run with ``make protos`` (or ``python -m tools.gen_protos``). The output is
``minequest/<service>/v1/<service>_pb2.py`` plus ``_pb2_grpc.py`` and ``.pyi``
type stubs, importable with package-absolute imports such as
``from minequest.auth.v1 import auth_pb2``. The folder is rebuilt from
scratch every time and is git-ignored: never edit it by hand.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "minequest"


def _plugin(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the dev dependencies (make install)")
    return found


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        f"--mypy_out={ROOT}",
        f"--mypy_grpc_out={ROOT}",
        *sources,
    ]
    code = protoc.main(args)
    if code != 0:
        print("protoc failed", file=sys.stderr)
        return int(code)
    for folder in [OUT, *(p for p in OUT.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    (OUT / "py.typed").touch()
    (OUT / "README").write_text(
        "Generated from protos/ by `make protos`. Do not edit; changes are overwritten.\n"
    )
    print(f"generated {len(sources)} proto files into {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
