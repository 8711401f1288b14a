"""Builds the Swift core as the extension module ``subinterpreter_parallelism._native``, and the
package page's long description and Project-URLs.

``build_ext`` runs ``scripts/build-native`` (``swift build -c release``) for the very
interpreter running pip: that interpreter's headers, the static Swift standard library (no
Swift runtime needed at run time), and a linker version script that exports only
``PyInit__native``. Its progress goes to pip's output (``pip install -v`` shows it).

The long description is README.md with its relative links made absolute (they would be broken
on the package index): documentation pages go to the documentation site, other files to the
repository. Both addresses come from ``[tool.subinterpreter_parallelism]`` in pyproject.toml.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

if sys.version_info < (3, 12):
    sys.exit(
        "subinterpreter_parallelism needs Python 3.12 or newer (own-GIL sub-interpreters, "
        f"PEP 684); this is Python {sys.version.split()[0]}."
    )

ROOT = Path(__file__).resolve().parent
# [text](target): a Markdown link or image whose target has no scheme and is not an anchor.
_RELATIVE_LINK = re.compile(r"(!?\[[^\]]*\]\()(?![a-z][a-z0-9+.-]*:|#)([^)\s]+)\)")


def public_addresses() -> tuple[str, str]:
    """(repository, documentation): the project's addresses, from pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        table = tomllib.load(file)["tool"]["subinterpreter_parallelism"]
    return table["repository"].rstrip("/"), table["documentation"].rstrip("/") + "/"


def absolute_link(target: str, repository: str, documentation: str) -> str:
    """Where a README link goes on the package index: a documentation page to its page on the
    site (``docs/executor.md#map`` -> ``.../executor/#map``), CHANGELOG.md and CONTRIBUTING.md
    to theirs, an image to the repository's raw file, any other file to its page there."""
    path, _, anchor = target.partition("#")
    anchor = f"#{anchor}" if anchor else ""
    pages = {"CHANGELOG.md": "changelog/", "CONTRIBUTING.md": "contributing/", "docs/index.md": ""}
    if path in pages:
        return documentation + pages[path] + anchor
    if path.startswith("docs/") and path.endswith(".md"):
        return f"{documentation}{path.removeprefix('docs/').removesuffix('.md')}/{anchor}"
    kind = "raw" if path.lower().endswith((".png", ".jpg", ".jpeg", ".gif", ".svg")) else "blob"
    return f"{repository}/{kind}/main/{path}{anchor}"


def long_description() -> str:
    """README.md with every relative link made absolute."""
    repository, documentation = public_addresses()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return _RELATIVE_LINK.sub(
        lambda m: f"{m.group(1)}{absolute_link(m.group(2), repository, documentation)})", text
    )


def project_urls() -> dict[str, str]:
    repository, documentation = public_addresses()
    return {
        "Documentation": documentation,
        "Source": repository,
        "Issues": f"{repository}/issues",
        "Changelog": f"{documentation}changelog/",
    }


class SwiftExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class BuildSwift(build_ext):
    """Runs scripts/build-native for this interpreter's headers, or takes the library named by
    $SP_PREBUILT_NATIVE (built by the host's Swift for a Python that lives in a Debian root,
    where no Swift is installed: see scripts/debian-root)."""

    def build_extension(self, ext: Extension) -> None:
        if sysconfig.get_config_var("Py_GIL_DISABLED"):
            sys.exit(
                "subinterpreter_parallelism needs a Python build with a GIL; on a "
                "free-threaded build (python3.13t, 3.14t) use threads instead."
            )
        built = os.environ.get("SP_PREBUILT_NATIVE")
        if not built:
            scratch = ROOT / f".build-py{sys.version_info.major}{sys.version_info.minor}"
            includes = dict.fromkeys(sysconfig.get_path(key) for key in ("include", "platinclude"))
            result = subprocess.run(
                ["bash", str(ROOT / "scripts" / "build-native"), str(scratch), *includes],
                check=True,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            built = result.stdout.strip().splitlines()[-1]
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copy then rename: a process that has the old library mapped keeps its inode intact
        # (overwriting it in place would crash such processes).
        staging = target.with_name(target.name + ".tmp")
        shutil.copyfile(built, staging)
        staging.chmod(0o755)
        os.replace(staging, target)


setup(
    long_description=long_description(),
    long_description_content_type="text/markdown",
    project_urls=project_urls(),
    ext_modules=[SwiftExtension("subinterpreter_parallelism._native")],
    cmdclass={"build_ext": BuildSwift},
)
