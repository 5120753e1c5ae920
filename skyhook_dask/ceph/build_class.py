"""Build ``libcls_skyhook.so``, the ``skyhook`` Ceph object class, against the installed pyarrow.

The class links Arrow C++ from the pyarrow wheel (its headers and shared libraries), so the OSD
that loads it must see the same pyarrow installation (an rpath points there). Ceph's
``<rados/objclass.h>`` comes from the Debian package ``rados-objclass-dev``.

A build is skipped when a library built from the same sources, flags and pyarrow version is
already in place (a hash is kept beside it); the library is replaced atomically, so an OSD
never loads a half-written file.

Command line: ``python -m skyhook_dask.ceph.build_class OUT_DIR [--force]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

import skyhook_dask

from ..exceptions import ClassNotAvailableError

LIBRARY_NAME = "libcls_skyhook.so"
HASH_SUFFIX = ".buildhash"
CXX_FLAGS = (
    "-std=c++20",
    "-O2",
    "-fPIC",
    "-D_GLIBCXX_USE_CXX11_ABI=1",
    # Only __cls_init is exported: our symbols cannot collide with the OSD's.
    "-fvisibility=hidden",
    "-fvisibility-inlines-hidden",
)
_OBJCLASS_HEADER = "rados/objclass.h"
_OBJCLASS_PACKAGE = "rados-objclass-dev"


def source_dir() -> Path:
    """The class's C++ sources: shipped in the wheel as ``_cls``, else the repository's ``cls``."""
    packaged = Path(skyhook_dask.__file__).parent / "_cls"
    if (packaged / "skyhook").is_dir():
        return packaged / "skyhook"
    repo = Path(skyhook_dask.__file__).resolve().parent.parent / "cls" / "skyhook"
    if repo.is_dir():
        return repo
    raise ClassNotAvailableError(
        f"the skyhook object class sources are missing (looked in {packaged} and {repo})"
    )


def _arrow_libraries() -> tuple[Path, list[str]]:
    """The pyarrow directory and the exact Arrow sonames to link (``libarrow.so.<ver>``)."""
    for directory in map(Path, pa.get_library_dirs()):
        names = []
        for stem in ("libarrow", "libarrow_compute"):
            found = sorted(
                p.name
                for p in directory.glob(f"{stem}.so.*")
                if p.name.count(".") == 2  # the soname, not libarrow.so.2600.1.0
            )
            if not found:
                break
            names.append(found[-1])
        else:
            return directory, names
    raise ClassNotAvailableError(
        f"pyarrow {pa.__version__} ships no libarrow.so.* and libarrow_compute.so.* in "
        f"{pa.get_library_dirs()}; reinstall pyarrow from a wheel"
    )


def _check_objclass_header() -> None:
    dirs = [Path("/usr/include"), Path("/usr/local/include")]
    dirs += [Path(d) for d in os.environ.get("CPATH", "").split(os.pathsep) if d]
    if not any((d / _OBJCLASS_HEADER).is_file() for d in dirs):
        raise ClassNotAvailableError(
            f"<{_OBJCLASS_HEADER}> was not found in {', '.join(map(str, dirs))}: install the "
            f"Debian package {_OBJCLASS_PACKAGE} (apt-get install {_OBJCLASS_PACKAGE})"
        )


def _compiler() -> str:
    cxx = os.environ.get("CXX", "g++")
    path = shutil.which(cxx)
    if path is None:
        raise ClassNotAvailableError(
            f"no C++ compiler {cxx!r} on PATH: install g++ (apt-get install g++) or set CXX"
        )
    return path


def _build_hash(sources: Path, flags: list[str], cxx: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"pyarrow {pa.__version__}\ncxx {cxx}\n".encode())
    digest.update("\0".join(flags).encode())
    for path in sorted(sources.iterdir()):
        if path.suffix in (".cc", ".h"):
            digest.update(f"\0{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).splitlines()[-40:])
        raise ClassNotAvailableError(f"building the skyhook class failed at {what}:\n{tail}")


def _plan() -> tuple[Path, str, list[str], list[str]]:
    """Sources, compiler, compile flags and link flags of a build with this environment."""
    sources = source_dir()
    cxx = _compiler()
    lib_dir, arrow_libs = _arrow_libraries()
    compile_flags = [*CXX_FLAGS, "-isystem", pa.get_include()]
    link_flags = [
        "-shared",
        f"-L{lib_dir}",
        *(f"-l:{name}" for name in arrow_libs),
        f"-Wl,-rpath,{lib_dir}",
    ]
    return sources, cxx, compile_flags, link_flags


def current_build_hash() -> str:
    """The hash a library built now would carry (sources, flags, compiler, pyarrow version)."""
    sources, cxx, compile_flags, link_flags = _plan()
    return _build_hash(sources, compile_flags + link_flags, cxx)


def build_class(out_dir: Path, *, force: bool = False) -> Path:
    """Compile ``libcls_skyhook.so`` into ``out_dir`` (skipped if up to date); return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources, cxx, compile_flags, link_flags = _plan()
    target = out_dir / LIBRARY_NAME
    hash_file = out_dir / (LIBRARY_NAME + HASH_SUFFIX)
    build_hash = _build_hash(sources, compile_flags + link_flags, cxx)
    if (
        not force
        and target.is_file()
        and hash_file.is_file()
        and hash_file.read_text().strip() == build_hash
    ):
        return target
    _check_objclass_header()

    units = sorted(sources.glob("*.cc"))
    with tempfile.TemporaryDirectory(prefix="skyhook-cls-") as tmp:
        objects = [Path(tmp) / (unit.stem + ".o") for unit in units]
        commands = [
            ([cxx, *compile_flags, "-c", str(unit), "-o", str(obj)], unit.name)
            for unit, obj in zip(units, objects, strict=True)
        ]
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            for future in [pool.submit(_run, cmd, what) for cmd, what in commands]:
                future.result()
        partial = out_dir / f".{LIBRARY_NAME}.{os.getpid()}.tmp"
        try:
            _run([cxx, *map(str, objects), *link_flags, "-o", str(partial)], "linking")
            os.replace(partial, target)  # atomic: a loader sees the old library or the new
        finally:
            partial.unlink(missing_ok=True)
    hash_partial = hash_file.with_name(f".{hash_file.name}.{os.getpid()}.tmp")
    hash_partial.write_text(build_hash + "\n")
    os.replace(hash_partial, hash_file)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m skyhook_dask.ceph.build_class",
        description="Build the skyhook Ceph object class (libcls_skyhook.so).",
    )
    parser.add_argument("out_dir", type=Path, help="directory to put libcls_skyhook.so in")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    try:
        print(build_class(args.out_dir, force=args.force))
    except ClassNotAvailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
