"""requirements/*.txt lock every dependency, with hashes, in step with pyproject.toml.

`make lock` (tools/lock.sh) writes them; `make install`, CI and the Dockerfile
install them with ``--require-hashes``. These checks run offline: a pin
changed in pyproject.toml without `make lock` fails here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^ ;\\]+)")


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def locked(file: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for every entry of a lock file."""
    entries: dict[str, tuple[str, int]] = {}
    current = None
    for line in (REQUIREMENTS / file).read_text().splitlines():
        match = _ENTRY.match(line)
        if match:
            current = _name(match[1])
            entries[current] = (match[3], 0)
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
        elif line and not line.startswith((" ", "#")):
            raise AssertionError(f"{file}: an entry that is not name==version: {line!r}")
    return entries


def pins(*extras: str) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    result = {}
    for requirement in wanted:
        if requirement.startswith("minequest["):
            continue
        match = _ENTRY.match(requirement)
        assert match, f"pyproject.toml: {requirement!r} is not pinned with =="
        result[_name(match[1])] = match[3]
    return result


@pytest.mark.parametrize(
    ("file", "extras"),
    [
        ("runtime.txt", ()),
        ("dev.txt", ("embedded", "dev")),
        ("bench.txt", ("embedded", "dev", "bench")),
    ],
)
def test_each_lock_holds_every_direct_pin_of_pyproject(file: str, extras: tuple[str, ...]) -> None:
    entries = locked(file)
    for name, version in pins(*extras).items():
        assert name in entries, f"{file} lacks {name}: run make lock"
        assert entries[name][0] == version, f"{file}: {name} {entries[name][0]} != {version}"


@pytest.mark.parametrize("file", ["runtime.txt", "dev.txt", "bench.txt", "protos.txt"])
def test_every_locked_package_has_hashes(file: str) -> None:
    entries = locked(file)
    assert len(entries) > 5
    unhashed = [name for name, (_, hashes) in entries.items() if hashes == 0]
    assert unhashed == []


def test_transitive_dependencies_are_locked_not_only_direct_ones() -> None:
    entries = locked("runtime.txt")
    assert len(entries) > len(pins()) + 20
    for transitive in ("h11", "anyio", "idna", "dnspython", "typing-extensions"):
        assert transitive in entries


def test_the_build_backend_is_locked_for_the_no_isolation_install() -> None:
    assert "setuptools" in locked("dev.txt")
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r $(LOCK)" in makefile
    assert "--no-build-isolation" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes" in dockerfile
