"""The sdist carries what building the Swift core needs, and no local build output.

Building the sdist compiles nothing (a few seconds, plus setuptools from PyPI for the isolated
build); installing it runs the Swift build, which scripts/check-sdist and scripts/build-wheel
do (`make check-dist`), not pytest.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

NEEDED = [
    "Package.swift",
    "setup.py",
    "pyproject.toml",
    "scripts/build-native",
    "Sources/NativeExtension/exports.map",
    "Sources/CPythonShim/include/CPythonShim.h",
    "Sources/CPythonShim/shim.c",
    "Tests",  # Package.swift's test target: SwiftPM cannot load the manifest without it
    "LICENSE",
    "README.md",
    "python/subinterpreter_parallelism/__init__.py",
    "python/subinterpreter_parallelism/py.typed",
    "python/subinterpreter_parallelism/_native.pyi",
]


def source_version() -> str:
    text = (ROOT / "python" / "subinterpreter_parallelism" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match, 'no __version__ = "..." line in __init__.py'
    return match.group(1)


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("not run from a source tree")
    out = tmp_path_factory.mktemp("sdist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [tarball] = out.glob("*.tar.gz")
    return tarball


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sdist_carries_the_native_build(sdist: Path):
    version = source_version()
    assert sdist.name == f"subinterpreter_parallelism-{version}.tar.gz"
    prefix = f"subinterpreter_parallelism-{version}/"
    with tarfile.open(sdist) as tar:
        members = {m.name.removeprefix(prefix): m for m in tar.getmembers()}
        pkg_info = tar.extractfile(prefix + "PKG-INFO").read().decode()
    names = set(members)
    for needed in NEEDED:
        assert needed in names, f"{needed} is missing from {sdist.name}"
    assert any(name.startswith("Sources/NativeExtension/") and name.endswith(".swift") for name in names)
    assert any(name.startswith("Sources/ParallelRuntime/") and name.endswith(".swift") for name in names)
    assert members["scripts/build-native"].mode & 0o111, "scripts/build-native lost its exec bit"
    local = sorted(
        name
        for name in names
        if any(
            part.startswith((".build", ".venv", ".hypothesis", ".pytest_cache", "__pycache__"))
            or part in ("dist", "build")
            for part in name.split("/")
        )
        or name.endswith((".so", ".pyc"))
    )
    assert not local, f"local build output in the sdist: {local[:10]}"
    # One version: pyproject.toml reads __version__ (tool.setuptools.dynamic).
    assert f"\nVersion: {version}\n" in pkg_info
    assert "\nLicense-Expression: MIT\n" in pkg_info and "\nLicense-File: LICENSE\n" in pkg_info
    [requires_python] = re.findall(r"^Requires-Python: (.*)$", pkg_info, re.MULTILINE)
    assert set(requires_python.split(",")) == {">=3.12", "<3.16"}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_package_page_metadata(sdist: Path):
    """The package index's page: Project-URLs from pyproject's one table of addresses, author,
    classifiers, and a long description whose links all work there (absolute)."""
    import tomllib

    version = source_version()
    with tarfile.open(sdist) as tar:
        pkg_info = tar.extractfile(f"subinterpreter_parallelism-{version}/PKG-INFO").read().decode()
    headers, _, description = pkg_info.partition("\n\n")
    addresses = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["subinterpreter_parallelism"]
    docs, repo = addresses["documentation"].rstrip("/") + "/", addresses["repository"].rstrip("/")
    urls = dict(
        line.split(": ", 1)[1].split(", ", 1)
        for line in headers.splitlines()
        if line.startswith("Project-URL")
    )
    assert urls == {
        "Documentation": docs,
        "Source": repo,
        "Issues": f"{repo}/issues",
        "Changelog": f"{docs}changelog/",
    }
    assert re.search(r"^Author: \S", headers, re.MULTILINE)
    assert re.search(r"^Keywords: \S", headers, re.MULTILINE)
    classifiers = set(re.findall(r"^Classifier: (.*)$", headers, re.MULTILINE))
    assert {"Typing :: Typed", "Intended Audience :: Developers"} <= classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert any(c.startswith("Topic ::") for c in classifiers)
    assert "Description-Content-Type: text/markdown" in headers
    links = re.findall(r"\]\(([^)\s]+)\)", description)
    assert links and description.startswith("# subinterpreter_parallelism")
    relative = [link for link in links if not re.match(r"https?://", link)]
    assert not relative, f"links that would be broken on the package index: {relative}"
    assert f"{docs}executor/" in links and f"{docs}changelog/" in links


# -- Python < 3.12 --------------------------------------------------------------------------------


def _python311() -> str | None:
    for candidate in [
        shutil.which("python3.11"),
        *sorted(glob.glob("/root/.pyenv/versions/3.11*/bin/python3.11")),
    ]:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.mark.timeout(240)
def test_python_311_gets_a_clear_error(tmp_path):
    python311 = _python311()
    if python311 is None:
        pytest.skip("no Python 3.11 interpreter found")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    # Importing the package source.
    imported = subprocess.run(
        [python311, "-c", "import subinterpreter_parallelism"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean_env, "PYTHONPATH": str(ROOT / "python")},
    )
    assert imported.returncode != 0
    assert "ImportError: subinterpreter_parallelism needs Python 3.12 or newer" in imported.stderr
    # pip install . into a throwaway 3.11 venv (a copy of the source: no build output in the tree).
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "python", source / "python", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([python311, "-m", "venv", str(venv)], check=True, timeout=120, env=clean_env)
    installed = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--no-build-isolation",
            "--no-index",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env,
    )
    output = installed.stdout + installed.stderr
    assert installed.returncode != 0
    assert "needs Python 3.12 or newer" in output
    assert "swift" not in output.lower() and "linker" not in output.lower()
