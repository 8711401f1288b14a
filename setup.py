"""Builds the Swift core as the extension module ``subinterpreter_parallelism._native``.

``build_ext`` runs ``swift build -c release`` for the very interpreter running pip: that
interpreter's headers, the static Swift standard library (no Swift runtime needed at run
time), and a linker version script that exports only ``PyInit__native``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

if sys.version_info < (3, 12):
    sys.exit(
        "subinterpreter_parallelism needs Python 3.12 or newer (own-GIL sub-interpreters, "
        f"PEP 684); this is Python {sys.version.split()[0]}.")

ROOT = Path(__file__).resolve().parent
PRODUCT = "SubinterpreterParallelism"


def find_swift() -> str:
    """The `swift` driver: $SWIFT, then PATH, then the usual install location."""
    for candidate in (os.environ.get("SWIFT"), shutil.which("swift"), "/opt/swift/usr/bin/swift"):
        if candidate and Path(candidate).exists():
            return candidate
    sys.exit("subinterpreter_parallelism: the Swift toolchain (swift 6.0+) is needed to build "
             "the native core; install it or set SWIFT=/path/to/swift.")


class SwiftExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class BuildSwift(build_ext):
    def build_extension(self, ext: Extension) -> None:
        include = sysconfig.get_path("include")
        scratch = ROOT / f".build-py{sys.version_info.major}{sys.version_info.minor}"
        command = [
            find_swift(), "build", "-c", "release",
            "--package-path", str(ROOT),
            "--scratch-path", str(scratch),
            "--product", PRODUCT,
            "-Xcc", f"-I{include}",
            "-Xlinker", f"--version-script={ROOT / 'Sources/NativeExtension/exports.map'}",
        ]
        print("building the Swift core:", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)
        built = scratch / "release" / f"lib{PRODUCT}.so"
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copy then rename: a process that has the old library mapped keeps its inode intact
        # (overwriting it in place would crash such processes).
        staging = target.with_name(target.name + ".tmp")
        shutil.copyfile(built, staging)
        staging.chmod(0o755)
        os.replace(staging, target)


setup(
    ext_modules=[SwiftExtension("subinterpreter_parallelism._native")],
    cmdclass={"build_ext": BuildSwift},
)
