"""What the packaging tests share: the two wheels built from this checkout, offline (conftest.py builds them once per
session), and fresh virtual environments that see chosen packages of this test environment, so that nothing is
downloaded or installed twice.

A test environment's packages are shown to a new environment through one .pth file naming a folder of symbolic links
to their top-level entries (a "view"): the new environment sees exactly the distributions linked there and imports
them from where they are installed. convbench itself (this environment's editable install of some checkout) is never
linked, so the convbench a new environment imports is the wheel installed into it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import distribution
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parents[2]
OWN = ("convbench", "harness", "__editable__")   # this environment's convbench and convbench-jax, however installed


def site_dirs() -> list[Path]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys(Path(paths[k]) for k in ("purelib", "platlib")))


def everything_but_convbench() -> list[Path]:
    """Every top-level entry of this environment's site-packages except convbench's own and the .pth files."""
    return [entry for site in site_dirs() if site.is_dir() for entry in sorted(site.iterdir())
            if not entry.name.lower().startswith(OWN) and entry.suffix != ".pth" and entry.name != "__pycache__"]


def distributions(*names: str) -> list[Path]:
    """The top-level entries (packages, their .libs folders, the .dist-info) of these installed distributions."""
    out: list[Path] = []
    for name in names:
        dist = distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        out += [Path(str(dist.locate_file(t))) for t in sorted(tops) if t != "__pycache__" and not t.endswith(".pth")]
    return [p for p in dict.fromkeys(out) if p.exists()]


def make_venv(where: Path, packages: Iterable[Path], wheels: Sequence[Path]) -> Path:
    """A virtual environment at ``where`` (no pip of its own) that sees ``packages`` (a view, see above) and has
    ``wheels`` installed by this environment's pip without dependencies or an index. Returns its bin folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    view = where.parent / f"{where.name}-view"
    view.mkdir()
    for entry in packages:
        if not (view / entry.name).exists():
            (view / entry.name).symlink_to(entry)
    python = where / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "test-view.pth").write_text(f"{view}\n")
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                          "--no-index", *map(str, wheels)], capture_output=True, text=True, env=clean_env())
    assert pip.returncode == 0, pip.stderr
    return where / "bin"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would put another convbench or plugin in front of the installed one."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith(("CONVBENCH_", "PIP_"))}
    return {**env, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def build_wheels(tmp: Path) -> dict[str, Path]:
    """convbench's and convbench-jax's wheels, built by pip from a copy of the checkout (pip builds in the source
    tree) with this environment's setuptools (--no-build-isolation: no download). Returns name -> wheel."""
    source = tmp / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".venv")
    for name in ("harness", "plugins"):
        shutil.copytree(ROOT / name, source / name, ignore=skip)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "--no-index", "--wheel-dir", str(tmp / "dist"), str(source),
                            str(source / "plugins" / "convbench-jax")], capture_output=True, text=True, env=clean_env())
    assert built.returncode == 0, built.stderr
    found = {p.name.split("-")[0].replace("_", "-"): p for p in (tmp / "dist").glob("*.whl")}
    assert set(found) == {"convbench", "convbench-jax"}, found
    return found
