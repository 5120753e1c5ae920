"""``skyhook ceph ...``: run the dev cluster on this machine and link the rados binding.

skyhook ceph up --dir DIR [--osds N --size R] [--rebuild-class]
                                              start (or create) the cluster, print its URL
skyhook ceph down --dir DIR                   stop its daemons
skyhook ceph status --dir DIR                 daemons, health, class, URL (JSON)
skyhook ceph link-rados                       make Debian's rados binding importable here
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def default_cluster_dir() -> Path:
    """``$SKYHOOK_CEPH_DIR``, else ``~/.local/share/skyhook-ceph``."""
    env = os.environ.get("SKYHOOK_CEPH_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base, "skyhook-ceph")


HELP = "run a single-node Ceph cluster for development"


def add_ceph_commands(actions: Any) -> None:
    """Add ``up``, ``down``, ``status`` and ``link-rados`` to ``skyhook ceph``'s subparsers."""

    def action(name: str, func: Any, help: str, with_dir: bool = True) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, description=help)
        if with_dir:
            parser.add_argument(
                "--dir", type=Path, default=default_cluster_dir(),
                help="the cluster's directory (default: $SKYHOOK_CEPH_DIR or "
                "~/.local/share/skyhook-ceph)",
            )  # fmt: skip
        parser.set_defaults(func=func)
        return parser

    up = action("up", cmd_up, "start the cluster (creating it in an empty --dir), print its URL")
    up.add_argument(
        "--rebuild-class", action="store_true",
        help="rebuild the skyhook object class and restart the OSD to load it",
    )  # fmt: skip
    up.add_argument("--no-class", action="store_true", help="do not build the object class")
    up.add_argument(
        "--osds", type=_positive, help="OSDs of a new cluster (default 1; a cluster keeps its own)"
    )
    up.add_argument(
        "--size", type=_positive,
        help="copies of each object in a new cluster's pool, one per OSD (default 1)",
    )  # fmt: skip
    action("down", cmd_down, "stop the cluster's daemons (its data stays)")
    action("status", cmd_status, "show the daemons, health, object class and store URL")
    action("link-rados", cmd_link_rados, "make the rados binding importable", with_dir=False)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def cmd_up(args: argparse.Namespace) -> int:
    import logging
    import time

    from .cluster import DevCluster
    from .daemons import DevClusterError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    osds, size = args.osds or 1, args.size or 1
    cluster = DevCluster(args.dir, install_class=not args.no_class, osds=osds, size=size)
    if cluster.state_path.exists() and (args.osds or args.size):
        have = (len(cluster.osd_ids), cluster.status()["pool"]["size"])
        if (args.osds or have[0], args.size or have[1]) != have:
            raise DevClusterError(
                f"the cluster in {cluster.dir} has {have[0]} OSD(s) keeping {have[1]} "
                "copies; --osds and --size apply to a new cluster (use an empty --dir)"
            )
    started = time.monotonic()
    url = cluster.up(rebuild_class=args.rebuild_class)
    print(f"Ceph dev cluster in {cluster.dir} is up ({time.monotonic() - started:.1f} s)")
    print(f"  export CEPH_CONF={cluster.conf_path}")
    print(f"  export SKYHOOK_STORE='{url}'")
    print(url)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from .cluster import DevCluster

    DevCluster(args.dir).down()
    print(f"Ceph dev cluster in {args.dir} is stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .cluster import DevCluster

    status = DevCluster(args.dir).status(details=True)
    print(json.dumps(status, indent=2))
    return 0 if status["running"] else 3


def cmd_link_rados(args: argparse.Namespace) -> int:
    from .link_rados import run

    return run(quiet=False)
