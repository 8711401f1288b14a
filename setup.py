"""Builds the Swift core as the extension module ``subinterpreter_parallelism._native``.

``build_ext`` runs ``scripts/build-native`` (``swift build -c release``) for the very
interpreter running pip: that interpreter's headers, the static Swift standard library (no
Swift runtime needed at run time), and a linker version script that exports only
``PyInit__native``.
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
        f"PEP 684); this is Python {sys.version.split()[0]}."
    )

ROOT = Path(__file__).resolve().parent


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
    ext_modules=[SwiftExtension("subinterpreter_parallelism._native")],
    cmdclass={"build_ext": BuildSwift},
)
