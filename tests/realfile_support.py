"""Test files shaped like real experiments' output, which uproot cannot write as they are.

``cmssw_like_file`` writes a NanoAOD-like file whose CMSSW metadata trees (``MetaData``,
``ParameterSets``, ``LuminosityBlocks``) each have one entry and only branches uproot cannot
read, as ``edm::`` branches are in files written by CMSSW: uproot writes plain int32 branches,
then each leaf is patched in place (same byte length) to declare three values per entry where
its basket holds one, so reading any of them fails.

``DELPHES`` is real Delphes output (split TClonesArrays such as ``Particle`` and ``Jet``), from
scikit-hep-testdata (BSD-3-Clause, ``data/LICENSE-scikit-hep-testdata.txt``), where it is
``uproot-issue513.root``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import uproot

DELPHES = Path(__file__).parent / "data" / "delphes.root"
METADATA_TREES = {
    "MetaData": ["FileFormatVersion", "FileIdentifier"],
    "ParameterSets": ["IdToParameterSetsBlobs"],
    "LuminosityBlocks": ["LuminosityBlockAuxiliary"],
}


def cmssw_like_file(path: Path) -> Path:
    with uproot.recreate(path, compression=None) as out:
        out.mktree("Events", {"run": np.uint32, "event": np.uint64, "nMuon": np.int32})
        out["Events"].extend(
            {
                "run": np.array([1, 1, 1], np.uint32),
                "event": np.array([11, 12, 13], np.uint64),
                "nMuon": np.array([0, 2, 1], np.int32),
            }
        )
        for tree, branches in METADATA_TREES.items():
            out.mktree(tree, {b: np.int32 for b in branches})
            out[tree].extend({b: np.array([7], np.int32) for b in branches})
    raw = bytearray(path.read_bytes())
    for branches in METADATA_TREES.values():
        for branch in branches:
            name = bytes([len(branch)]) + branch.encode()
            # TLeaf: fName, fTitle, fLen = 1, fLenType = 4 (every copy: live and stale keys)
            leaf = name + name + b"\x00\x00\x00\x01\x00\x00\x00\x04"
            at = raw.find(leaf)
            assert at >= 0, branch
            while at >= 0:
                title = at + len(name) + 1
                raw[title : title + len(branch)] = (branch[:-3] + "[3]").encode()
                length = at + 2 * len(name)
                raw[length : length + 4] = (3).to_bytes(4, "big")
                at = raw.find(leaf, at + 1)
    path.write_bytes(bytes(raw))
    return path
