"""Make Debian's ``python3-rados`` binding importable inside a virtual environment.

No ``rados`` wheel exists on PyPI; Debian ships the binding as one extension module built for
the system CPython. A venv of the same minor version can use it through a symlink in its
site-packages. Usage: ``python -m skyhook_dask.ceph.link_rados [--quiet]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import sysconfig
from pathlib import Path

DIST_PACKAGES = (Path("/usr/lib/python3/dist-packages"), Path("/usr/lib64/python3/dist-packages"))
INSTALL_HINT = "apt-get install -y python3-rados"


class LinkError(Exception):
    """The binding cannot be linked here; the message says why and what to do."""


def find_bindings() -> list[Path]:
    """Every ``rados*.so`` Debian installed, whatever Python it was built for."""
    return sorted(path for base in DIST_PACKAGES for path in base.glob("rados*.so"))


def rados_importable() -> bool:
    return importlib.util.find_spec("rados") is not None


def link_rados() -> Path | None:
    """Symlink the matching binding into this environment; None when nothing was needed.

    Raises :class:`LinkError` when the binding is absent or built for another Python.
    """
    if rados_importable():
        return None
    bindings = find_bindings()
    if not bindings:
        raise LinkError(f"Debian's rados binding is not installed: {INSTALL_HINT}")
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ""
    matching = [path for path in bindings if path.name == f"rados{suffix}"]
    if not matching:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        raise LinkError(
            f"the rados binding(s) {', '.join(p.name for p in bindings)} were built for another "
            f"Python than this one ({version}, {sys.executable}); build the environment from the "
            "system interpreter instead (e.g. `/usr/bin/python3 -m venv .venv`)"
        )
    site_packages = Path(sysconfig.get_paths()["platlib"])
    target = site_packages / matching[0].name
    if target.is_symlink() or target.exists():
        target.unlink()  # a stale link to a removed binding
    target.symlink_to(matching[0])
    importlib.invalidate_caches()
    if not rados_importable():
        raise LinkError(f"linked {target} -> {matching[0]} but `import rados` still fails")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m skyhook_dask.ceph.link_rados", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print nothing and exit 0 when there is nothing to do"
    )
    args = parser.parse_args(argv)
    return run(quiet=args.quiet)


def run(quiet: bool = False) -> int:
    try:
        linked = link_rados()
    except LinkError as exc:
        if quiet:
            return 0 if not find_bindings() else _warn(str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not quiet:
        print(f"linked {linked}" if linked else "the rados module is already importable")
    return 0


def _warn(message: str) -> int:
    print(f"warning: {message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
