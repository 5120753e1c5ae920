"""Reading ROOT files for ingestion: open a source, walk its layout, read trees as Arrow.

Sources are local paths, ``file://`` URLs and anything uproot reads remotely (``http(s)://``
through fsspec, ``root://`` with XRootD). Every TTree and RNTuple of every TDirectory is found
(both are "trees" below). Branches (RNTuple fields) that uproot cannot interpret, cannot read,
or whose arrays awkward cannot convert to Arrow are skipped with a reason (and a
:class:`SkippedBranchWarning`), never a crash.

Column names are uproot's full paths (``"Muon_pt"``; ``"parent/child"`` for TTree sub-branches,
``"record.member"`` for RNTuple sub-fields); only leaves become columns, since a parent's data
lives in its children. Jagged branches become ``large_list<...>`` columns (awkward's 64-bit
offsets are kept as they are).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import awkward as ak
import numpy as np
import pyarrow as pa
import uproot

from ..exceptions import BackendNotInstalledError, IngestError
from ..formats.objects import EVENT_ID

TREE_CLASSES = frozenset({"TTree", "TNtuple", "TNtupleD"})
RNTUPLE_CLASSES = frozenset({"ROOT::RNTuple", "ROOT::Experimental::RNTuple"})
DIRECTORY_CLASSES = frozenset({"TDirectory", "TDirectoryFile"})
EVENT_ID_FIELD = pa.field(EVENT_ID, pa.int64(), nullable=False)


class SkippedBranchWarning(UserWarning):
    """A branch was left out of the ingested data; the message says which and why."""


# --- sources -----------------------------------------------------------------------------------


def local_path(url: str) -> Path | None:
    """The local path of a plain path or ``file://`` URL; None for remote URLs."""
    if "://" not in url:
        return Path(url).expanduser()
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    return None


def source_name(url: str) -> str:
    path = local_path(url)
    if path is not None:
        return path.name
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or url


def _epoch(value: Any) -> float | None:
    """fsspec reports times as numbers, datetimes or HTTP/ISO date strings."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return parsedate_to_datetime(str(value)).timestamp()
    except (TypeError, ValueError):
        return None


def require_reader(url: str) -> None:
    """BackendNotInstalledError, naming the extra to install, when nothing can read ``url``."""
    if urlsplit(url).scheme not in ("root", "xroot"):
        return
    import importlib.util

    for module in ("XRootD", "fsspec_xrootd"):
        if importlib.util.find_spec(module) is None:
            raise BackendNotInstalledError(
                f"reading {url} needs the XRootD client: pip install 'skyhook-dask[xrootd]'"
            )


def source_attributes(url: str) -> dict[str, Any]:
    """name, url, size, access_time, modification_time of a source (None where unknown)."""
    require_reader(url)
    attrs: dict[str, Any] = {"name": source_name(url), "url": url, "size": None}
    attrs.update(access_time=None, modification_time=None)
    path = local_path(url)
    if path is not None:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise IngestError(f"cannot read ROOT file {url}: {exc.strerror or exc}") from exc
        attrs.update(size=st.st_size, access_time=st.st_atime, modification_time=st.st_mtime)
        return attrs
    import fsspec

    try:
        fs, fs_path = fsspec.core.url_to_fs(url)
        info = fs.info(fs_path)
    except FileNotFoundError as exc:
        raise IngestError(f"cannot read ROOT file {url}: not found") from exc
    except Exception:  # no fsspec driver for this scheme: uproot may still read it
        return attrs
    attrs["size"] = info.get("size")
    for key in ("mtime", "modified", "last_modified", "LastModified", "Last-Modified"):
        if info.get(key) is not None:
            attrs["modification_time"] = _epoch(info[key])
            break
    return attrs


def open_root(url: str) -> Any:
    """Open a ROOT file (an uproot directory, use as a context manager) or raise IngestError."""
    path = local_path(url)
    require_reader(url)
    try:
        # A Path keeps uproot from reading "name:object" syntax into a local file name, and
        # array_cache=None keeps memory bounded by the chunk being read.
        return uproot.open(path if path is not None else url, array_cache=None)
    except Exception as exc:
        if "expected Chunk of length" in str(exc):  # fewer bytes than a ROOT header
            raise IngestError(f"{url} is not a ROOT file: it is too short") from exc
        raise IngestError(f"cannot open ROOT file {url}: {type(exc).__name__}: {exc}") from exc


# --- layout ------------------------------------------------------------------------------------


@dataclass(eq=False)
class TreeHandle:
    """A tree found in a file, with its node in the file's layout."""

    key: str  # "dir/Events;1"
    name: str
    cycle: int
    path: str  # "dir/Events"
    tree: Any
    node: dict[str, Any]
    branch_nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def matches(self, spec: str) -> bool:
        return spec in (self.key, self.path, self.name, self.key.rsplit(";", 1)[0])


_TREE_KIND = dict.fromkeys(TREE_CLASSES, "TTree")


def _node(name: str, classtype: str, datatype: str | None = None) -> dict[str, Any]:
    return {"name": name, "classtype": classtype, "datatype": datatype, "children": []}


def _typename(branch: Any) -> str:
    try:
        return str(branch.typename)
    except Exception:
        return "unknown"


def _is_rntuple(tree: Any) -> bool:
    return getattr(tree, "classname", "") in RNTUPLE_CLASSES


def _children(item: Any) -> list[Any]:
    """A TTree's or TBranch's branches; an RNTuple's or RField's sub-fields."""
    branches = getattr(item, "branches", None)
    return list(branches if branches is not None else getattr(item, "fields", ()))


def _branch_node(branch: Any, path: str, nodes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    is_field = not hasattr(branch, "branches")
    node = _node(branch.name, "RField" if is_field else "TBranch", _typename(branch))
    nodes[path] = node
    separator = "." if is_field else "/"
    for sub in _children(branch):
        node["children"].append(_branch_node(sub, f"{path}{separator}{sub.name}", nodes))
    return node


def _reads_itself(branch: Any) -> bool:
    """A branch with sub-branches that uproot also reads by its own name, as a value of its
    own (a split TClonesArray such as Delphes' ``Particle`` reads as the per-event count)."""
    try:
        interpretation = branch.interpretation
    except Exception:
        return False
    kinds = (uproot.interpretation.identify.UnknownInterpretation, uproot.AsGrouped)
    return not isinstance(interpretation, kinds)


def _leaves(tree: Any) -> list[tuple[str, Any]]:
    """(full path, branch or field) of every future column: the leaves, and the branches with
    sub-branches that read as values of their own."""
    if _is_rntuple(tree):
        return [(path, f) for path, f in tree.iteritems(recursive=True) if not f.fields]
    items = tree.iteritems(recursive=True, full_paths=True)
    return [(path, b) for path, b in items if not b.branches or _reads_itself(b)]


def _highest_cycles(directory: Any) -> list[tuple[str, int, str, str]]:
    """(name, cycle, key, classname) of the highest cycle of each name, in file order."""
    best: dict[str, tuple[str, int, str, str]] = {}
    for key, classname in directory.classnames(recursive=False, cycle=True).items():
        name, _, cycle_text = key.rpartition(";")
        cycle = int(cycle_text) if cycle_text.isdigit() else 0
        if name not in best or cycle > best[name][1]:
            best[name] = (name, cycle, key, classname)
    return list(best.values())


def walk_file(directory: Any, file_name: str) -> tuple[dict[str, Any], list[TreeHandle]]:
    """The file's layout (nested nodes) and every tree in it, depth first."""
    root = _node(file_name, "TDirectory")
    trees: list[TreeHandle] = []
    _walk(directory, root, "", trees)
    return root, trees


def _walk(directory: Any, node: dict[str, Any], prefix: str, trees: list[TreeHandle]) -> None:
    for name, cycle, key, classname in _highest_cycles(directory):
        is_rntuple = classname in RNTUPLE_CLASSES
        child = _node(name, "RNTuple" if is_rntuple else _TREE_KIND.get(classname, classname))
        node["children"].append(child)
        if not (classname in TREE_CLASSES or is_rntuple or classname in DIRECTORY_CLASSES):
            continue
        try:
            item = directory[key]
        except Exception as exc:  # e.g. a class uproot has no streamer for
            child["skipped"] = f"uproot cannot read it: {type(exc).__name__}: {exc}"
            warnings.warn(
                f"{prefix}{key} ({classname}) skipped: {child['skipped']}",
                SkippedBranchWarning,
                stacklevel=4,
            )
            continue
        if classname in DIRECTORY_CLASSES:
            child["classtype"] = "TDirectory"
            _walk(item, child, f"{prefix}{name}/", trees)
            continue
        child.update(key=f"{prefix}{name};{cycle}", entries=int(item.num_entries))
        handle = TreeHandle(child["key"], name, cycle, prefix + name, item, child)
        for branch in _children(item):
            child["children"].append(_branch_node(branch, branch.name, handle.branch_nodes))
        trees.append(handle)


# --- reading a tree as Arrow tables ------------------------------------------------------------


def _unusable(path: str, branch: Any) -> str | None:
    """Why a branch cannot become a column (before reading any data), or None."""
    if path == EVENT_ID:
        return f"its name collides with the {EVENT_ID} column"
    if not hasattr(branch, "interpretation"):
        return None  # an RNTuple field: its type is checked when it is read
    try:
        interpretation = branch.interpretation
    except Exception as exc:
        return f"uproot cannot interpret it: {type(exc).__name__}: {exc}"
    if isinstance(interpretation, uproot.interpretation.identify.UnknownInterpretation):
        return f"uproot cannot interpret it ({interpretation})"
    return None


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


def _convert(arrays: ak.Array) -> pa.Table:
    table = ak.to_arrow_table(arrays, extensionarray=False, list_to32=False)
    return table.replace_schema_metadata(None)


class TreeReader:
    """Reads entry ranges of one tree as Arrow tables: ``event_id`` then one column per branch.

    The first read decides which branches are usable (unreadable or unconvertible ones are
    skipped there); later reads must produce the same schema or raise IngestError.
    """

    def __init__(self, tree: Any, where: str) -> None:
        self.tree, self.where = tree, where
        self.columns: list[str] = []
        self.skipped: list[dict[str, str]] = []
        self.schema: pa.Schema | None = None
        self.branches: dict[str, Any] = {}
        for path, branch in _leaves(tree):
            self.branches.setdefault(path, branch)
            reason = _unusable(path, branch)
            if reason is None and path in self.columns:
                reason = "another branch has the same path, and uproot reads that one by it"
            if reason:
                self._skip(path, branch, reason)
            else:
                self.columns.append(path)

    def _skip(self, path: str, branch: Any, reason: str) -> None:
        typename = _typename(branch) if branch is not None else "unknown"
        self.skipped.append({"branch": path, "typename": typename, "reason": reason})
        warnings.warn(
            f"{self.where}: branch {path!r} ({typename}) skipped: {reason}",
            SkippedBranchWarning,
            stacklevel=3,
        )

    def _drop(self, bad: dict[str, str]) -> None:
        for path, reason in bad.items():
            self._skip(path, self.branches[path], reason)
        self.columns = [c for c in self.columns if c not in bad]

    def _arrays(self, start: int, stop: int) -> ak.Array:
        """The columns' arrays as one record array, a field per column path."""
        if not _is_rntuple(self.tree):
            return self.tree.arrays(self.columns, entry_start=start, entry_stop=stop)
        # RNTuple.arrays nests "record.member" paths inside records: read leaves one by one.
        read = {c: self.tree[c].array(entry_start=start, entry_stop=stop) for c in self.columns}
        return ak.zip(read, depth_limit=1) if read else ak.Array([{}] * (stop - start))

    def _read_arrays(self, start: int, stop: int) -> ak.Array:
        try:
            return self._arrays(start, stop)
        except Exception as exc:
            if self.schema is not None:
                raise IngestError(
                    f"{self.where}: reading entries {start}..{stop} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        bad: dict[str, str] = {}
        for path in self.columns:  # find the culprits one branch at a time
            try:
                self.tree[path].array(entry_start=start, entry_stop=stop)
            except uproot.KeyInFileError:
                bad[path] = "uproot does not find it by its path (an earlier branch has its name)"
            except Exception as exc:
                bad[path] = f"uproot cannot read it: {_first_line(exc)}"
        self._drop(bad)
        return self._arrays(start, stop)

    def _to_arrow(self, arrays: ak.Array) -> pa.Table:
        try:
            return _convert(arrays)
        except Exception as exc:
            if self.schema is not None:
                raise IngestError(
                    f"{self.where}: converting to Arrow failed: {type(exc).__name__}: {exc}"
                ) from exc
        bad: dict[str, str] = {}
        for path in self.columns:
            try:
                _convert(arrays[[path]])
            except Exception as exc:
                bad[path] = f"cannot convert to Arrow: {_first_line(exc)}"
        self._drop(bad)
        return _convert(arrays[self.columns])

    def read(self, start: int, stop: int) -> pa.Table:
        event_id = pa.array(np.arange(start, stop, dtype=np.int64))
        table = None
        if self.columns:
            arrays = self._read_arrays(start, stop)
            if self.columns:  # reading may have found every branch unreadable
                table = self._to_arrow(arrays)
        if table is not None and self.columns:
            table = table.add_column(0, EVENT_ID_FIELD, event_id)
        else:  # a tree with entries but no readable branch keeps its entries
            table = pa.Table.from_arrays([event_id], schema=pa.schema([EVENT_ID_FIELD]))
        if self.schema is None:
            self.schema = table.schema
        elif not table.schema.equals(self.schema):
            try:
                table = table.cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                raise IngestError(
                    f"{self.where}: entries {start}..{stop} have schema {table.schema} which "
                    f"differs from the first entries' {self.schema}"
                ) from exc
        return table

    def annotate(self, handle: TreeHandle) -> None:
        """Record each branch's column, Arrow type or skip reason in the file layout."""
        assert self.schema is not None
        reasons = {s["branch"]: s["reason"] for s in self.skipped}
        for path, node in handle.branch_nodes.items():
            if path in reasons:
                node.update(column=None, arrow_type=None, skipped=reasons[path])
            elif self.schema.get_field_index(path) >= 0:
                node.update(column=path, arrow_type=str(self.schema.field(path).type))
            else:  # a branch of sub-branches only
                node.update(column=None, arrow_type=None)
