"""The product's wheel (`pip install refstage`, what production runs) carries none of the development kit:
no emulators, no `refstage demo` or `refstage bench`, no demo credentials, no devkit commands; and the narrowed
package data still ships every file of the product's own tree (docs/decisions/2026-12-02-emulators-package.md).

Built from a copy of the sources with setuptools' PEP 517 backend, without build isolation (setuptools comes
with the test extra), so no network and no build output in the working tree; a few seconds."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "node_modules")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    work = tmp_path_factory.mktemp("wheel")
    source, out = work / "src", work / "out"
    # backend/ whole, with refstage_devkit beside refstage: the product's package selection must leave it out.
    # The LWC preview's built dist/ (ignored by git) comes along when present: it must stay out too.
    shutil.copytree(ROOT / "backend", source / "backend", ignore=SKIP)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    out.mkdir()
    built = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))",
         str(out)], cwd=source, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = out.glob("refstage-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def _package_files(zf: zipfile.ZipFile) -> set[str]:
    return {n for n in zf.namelist() if not n.endswith("/") and ".dist-info/" not in n}


def test_the_wheel_holds_no_devkit_code(wheel: zipfile.ZipFile) -> None:
    names = _package_files(wheel)
    assert names and all(n.startswith("refstage/") for n in names), sorted(n for n in names if not n.startswith("refstage/"))
    assert not [n for n in names if "/emulators/" in n or n.endswith(("/demo.py", "/bench_cli.py"))]


def test_no_file_carries_the_demo_credentials(wheel: zipfile.ZipFile) -> None:
    assert not [n for n in wheel.namelist() if b"refstage-demo" in wheel.read(n)]


def test_the_product_registers_no_devkit_command(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    parsed = configparser.ConfigParser()
    parsed.read_string(wheel.read(entry_points).decode())
    assert parsed.sections() == ["console_scripts"] and dict(parsed["console_scripts"]) == {"refstage": "refstage.cli:main"}


def test_every_file_of_the_product_tree_is_shipped(wheel: zipfile.ZipFile) -> None:
    """The package-data globs name what the product reads at run time: nothing in its tree is left behind."""
    tree = {p.relative_to(ROOT / "backend").as_posix() for p in (ROOT / "backend" / "refstage").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")}
    assert tree - _package_files(wheel) == set()
