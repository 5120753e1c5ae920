"""A single-node Ceph cluster for development and tests, and helpers around Debian's Ceph.

``DevCluster(dir).up()`` starts one monitor and one bluestore OSD on 127.0.0.1 (cephx on,
everything inside ``dir``) and returns the store URL of its ``skyhook`` pool.
"""

from __future__ import annotations

from .cluster import APT_INSTALL_LINE, DevCluster, DevClusterError

__all__ = ["APT_INSTALL_LINE", "DevCluster", "DevClusterError"]
