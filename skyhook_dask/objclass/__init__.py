"""The Python twin of the ``skyhook`` object class in ``cls/skyhook``: the same ``scan``,
``aggregate`` and ``stat`` methods over an object's bytes. The embedded and memory stores run
it in place of an OSD, clients fall back to it when a Ceph cluster lacks the class, and the
tests use it as the oracle for the C++ class.

Layer: in-storage scan. Imports ``formats``, ``query`` and ``exceptions``.
"""
