"""The repository's top-level folders are one distribution: the wheel, the editable install and
the source tree hold the same `unmask.*` modules, so nothing is importable here but missing
from a release (or the reverse)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import unmask

ROOT = Path(__file__).resolve().parent.parent


def source_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set()
    for package, folder in config["package-dir"].items():
        for path in (ROOT / folder).glob("*.py"):
            found.add(f"{package}.{path.stem}".removesuffix(".__init__"))
    # Every folder with modules in it is a declared package.
    for folder in ("api", "core", "detector", "training", "storage", "worker", "migrations", "cli"):
        for sub in (ROOT / folder).rglob("*.py"):
            assert sub.parent.relative_to(ROOT).as_posix() in config["package-dir"].values(), sub
    return found


def installed_modules() -> set[str]:
    found = set()
    for base in unmask.__path__:
        for path in Path(base).rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            found.add(".".join(("unmask", *parts)).removesuffix(".__init__"))
    return found


def test_wheel_editable_install_and_tree_agree(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path,
            ROOT,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("unmask-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    in_wheel = {
        n.removesuffix(".py").replace("/", ".").removesuffix(".__init__") for n in names if n.endswith(".py")
    }
    assert source_modules() == installed_modules() == in_wheel
    assert "unmask/detector/weights/unmask-irv1.pt" in names
    assert "unmask/detector/weights/unmask-lite0.pt" in names
    assert "unmask/migrations/script.py.mako" in names
