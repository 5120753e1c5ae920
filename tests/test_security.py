"""Security: cephx is on by default, secrets never travel in task graphs or store URLs, the query
language has no path to code execution, and names cannot escape a store or a dataset.

(The cephx refusals of a wrong key, an unknown user and another pool are in
test_ceph_cluster.py; the key files' permissions in its status test.)
"""

from __future__ import annotations

import base64
import builtins
import configparser
import errno
import json
import os
import pickle
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import distributed
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from query_support import query_tables

from skyhook_dask import SkyhookDM
from skyhook_dask.catalog.model import list_datasets, load_dataset
from skyhook_dask.catalog.verify import verify_dataset
from skyhook_dask.ceph.daemons import render_conf
from skyhook_dask.data import sample_path
from skyhook_dask.dataframe.reader import read_skyhook
from skyhook_dask.exceptions import (
    InvalidNameError,
    QuerySyntaxError,
    StoreURLError,
    UnknownColumnError,
    UnknownTreeError,
)
from skyhook_dask.formats import manifest as mf
from skyhook_dask.ingest.pipeline import collect_garbage, write_dataset
from skyhook_dask.plan import plan
from skyhook_dask.query.parser import ColumnRef, parse_query
from skyhook_dask.runtime.mappers import OnDask
from skyhook_dask.runtime.plugin import StorePlugin
from skyhook_dask.storage import open_store, validate_name
from skyhook_dask.storage.local import LocalStore
from skyhook_dask.storage.rados import RadosStore

AUTH_OPTIONS = ("auth cluster required", "auth service required", "auth client required")

# --- cephx by default --------------------------------------------------------------------------


def _auth_settings(conf_text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(conf_text)
    return {option: parser.get("global", option, fallback="") for option in AUTH_OPTIONS}


def test_dev_cluster_config_requires_cephx(tmp_path: Path) -> None:
    conf = render_conf(tmp_path, fsid=str(uuid.uuid4()), mon_ports=[3300, 6789], user="u",
                       block_size=1 << 30)  # fmt: skip
    assert _auth_settings(conf) == dict.fromkeys(AUTH_OPTIONS, "cephx")
    assert not re.search(r"auth\s*\w*\s*=\s*none", conf)


@pytest.mark.ceph
def test_running_cluster_refuses_clients_without_cephx(ceph_cluster: Any) -> None:
    import rados

    assert _auth_settings(ceph_cluster.conf_path.read_text()) == dict.fromkeys(
        AUTH_OPTIONS, "cephx"
    )
    for options in ({"auth_client_required": "none"}, {"keyring": os.devnull}):
        handle = rados.Rados(
            conffile=str(ceph_cluster.conf_path),
            name=f"client.{ceph_cluster.user}",
            conf={**options, "client_mount_timeout": "10"},
        )
        with pytest.raises(rados.PermissionDeniedError):
            handle.connect()


# --- no secrets in task graphs or URLs ---------------------------------------------------------


def _keys(keyring: Path) -> list[bytes]:
    """The secret of every entity of a keyring: its base64 text and its raw bytes."""
    found = re.findall(r"key\s*=\s*(\S+)", keyring.read_text())
    assert found, f"no key in {keyring}"
    return [form for key in found for form in (key.encode(), base64.b64decode(key)[-16:])]


def _assert_no_secret(blob: bytes, secrets: list[bytes], what: str) -> None:
    for secret in secrets:
        assert secret not in blob, f"a cephx key travels in {what}"


class RecordingClient:
    """Stands in for a Dask client: records what would be shipped to the workers, runs it here."""

    def __init__(self) -> None:
        self.shipped: list[bytes] = []

    def register_plugin(self, plugin: Any, name: str | None = None) -> None:
        self.shipped.append(pickle.dumps(plugin))

    def submit(
        self,
        func: Callable[..., Any],
        *args: Any,
        key: Any = None,
        workers: Any = None,
        allow_other_workers: bool = False,
        **kwargs: Any,
    ) -> Any:
        self.shipped.append(cloudpickle.dumps((func, args, kwargs, workers)))
        return _Done(func(*args, **kwargs))

    def run(self, func: Callable[[], Any]) -> dict[str, Any]:
        """As on every worker: one worker here, at a made-up address."""
        self.shipped.append(cloudpickle.dumps(func))
        return {"tcp://127.0.0.1:1": func()}

    def gather(self, futures: Any) -> Any:
        return [f.result() for f in futures]


class _Done:
    status = "finished"

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


@pytest.mark.ceph
def test_keyrings_never_travel_in_task_graphs(
    ceph_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = _keys(ceph_cluster.keyring_path) + _keys(ceph_cluster.admin_keyring_path)
    url = ceph_cluster.url
    assert set(re.findall(r"[?&](\w+)=", url)) <= {"conf", "name", "keyring", "timeout"}
    _assert_no_secret(url.encode(), secrets, "the store URL")
    _assert_no_secret(pickle.dumps(open_store(url)), secrets, "a pickled store")
    _assert_no_secret(pickle.dumps(StorePlugin([url])), secrets, "the worker plugin")
    name = f"sec-{uuid.uuid4().hex[:8]}"
    dataset = write_dataset(url, [str(sample_path("nano_dimuon.root"))], name, trees=["Events"])
    # dd.read_skyhook: the whole graph, with a projection and a predicate pushed into it.
    frame = read_skyhook(name, ["nMuon", "MET_pt"], store=url, filters=[("nMuon", ">=", 2)])
    frame = frame[frame.MET_pt > 10]
    graph = dict(frame.optimize().__dask_graph__())
    blob = cloudpickle.dumps(graph)
    assert url.encode() in blob  # the graph carries the URL (a path to the config) ...
    _assert_no_secret(blob, secrets, "a read_skyhook graph")  # ... and no key
    assert len(frame.compute()) > 0
    # runQuery on the Dask driver: the plugin and every scan task it would ship.
    client = RecordingClient()
    monkeypatch.setattr(distributed, "wait", lambda futures: None)  # they are all done
    tables = query_tables(dataset, "select nMuon >= 2, project Muon_pt", OnDask(client))  # type: ignore[arg-type]
    assert tables[0].num_rows > 0 and len(client.shipped) > 1
    for blob in client.shipped:
        _assert_no_secret(blob, secrets, "a runQuery task")


def test_store_urls_take_no_secrets() -> None:
    with pytest.raises(StoreURLError, match="unknown parameter"):
        RadosStore.from_url("rados://pool?conf=/c&key=AQBzZXNzaW9uLWtleS1ub3QtcmVhbA==")


# --- the query language executes nothing -------------------------------------------------------

CODE = [
    "__import__('os').system('touch {canary}')",
    "select __import__('os').system('touch {canary}')",
    "select ().__class__.__bases__[0].__subclasses__()",
    "select (lambda: 1)() > 0",
    "select lambda x: x",
    "project x[0]",
    "select Muon_pt[0:1] > 1",
    "select x > 1; import os",
    "select eval('1') > 0",
    "select exec('import os')",
    "select open('/etc/passwd')",
    "select getattr(x, 'y') > 1",
    "select 'text' == x",
    'select "text" == x',
    "select {} == x",
    "select [1, 2] == x",
    "select x if y else z",
    "select (x := 1)",
    "select f'{x}' == x",
    "select x.y.z > 1",
    "select x > 1 # comment",
    "project `x`.`y`.`z`",
]


@pytest.mark.parametrize("text", CODE)
def test_code_is_a_syntax_error(text: str, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    called: list[str] = []
    saved = {name: getattr(builtins, name) for name in ("eval", "exec", "compile")}
    try:  # the parser must never reach for these
        for name in saved:
            setattr(builtins, name, lambda *args, _name=name, **kwargs: called.append(_name))
        try:
            parse_query(text.replace("{canary}", str(canary)))
            outcome: Exception | None = None
        except QuerySyntaxError as error:
            outcome = error
    finally:
        for name, function in saved.items():
            setattr(builtins, name, function)
    assert called == []
    assert isinstance(outcome, QuerySyntaxError), f"{text!r} parsed"
    assert not canary.exists()


def test_names_that_look_like_code_are_only_names() -> None:
    """Backticks make any text a column name: data to look up, never code to run."""
    sample = str(sample_path("nano_tree.root"))
    dataset = write_dataset(f"memory://sec-{uuid.uuid4().hex}", [sample], "d", trees=["Events"])
    file = dataset.files[0]
    for text, error in [
        ("select `__import__('os').system('id')` > 1", UnknownColumnError),
        ("project `os`.`system`", UnknownTreeError),
        ("select x.__class__ > 1", UnknownTreeError),  # tree.column, not attribute access
    ]:
        query = parse_query(text)
        assert all(isinstance(ref, ColumnRef) for ref in query.column_refs())
        with pytest.raises(error):
            plan(file, query)


# --- names cannot escape a store or a dataset --------------------------------------------------

BAD_DATASET_NAMES = [
    "", ".", "..", "../x", "../../etc", "/etc/passwd", "a/b", "a\\b", "a\x00b", "a\nb", " ",
    "a b", "~root", "$(id)", "a;b", "a|b", "*", "ａ", "C:\\x", "x" * 2000,
]  # fmt: skip


def _files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")}


@pytest.mark.parametrize("name", BAD_DATASET_NAMES)
def test_bad_dataset_names_are_refused_everywhere(name: str, tmp_path: Path) -> None:
    root = tmp_path / "store"
    url = root.as_uri()
    sample = str(sample_path("nano_tree.root"))
    before = _files_under(tmp_path)
    sk = SkyhookDM().connect(store=url, dask=False)
    for operation in (
        lambda: write_dataset(url, [sample], name),
        lambda: load_dataset(url, name),
        lambda: sk.getDataset(name),
        lambda: verify_dataset(url, name),
        lambda: collect_garbage(url, name),
    ):
        with pytest.raises(InvalidNameError):
            operation()
    assert _files_under(tmp_path) - before <= {root}  # at most the empty store root itself
    assert list_datasets(url) == []


NAME_TEXT = st.lists(
    st.sampled_from([*"ab./\\\x00 _-:~%", "..", "../", "\u2215"]), max_size=16
).map("".join)


@settings(max_examples=400, deadline=None, database=None)
@given(NAME_TEXT)
def test_object_names_stay_inside_the_store(name: str) -> None:
    store = LocalStore("/srv/skyhook-store")  # paths only; nothing is written
    try:
        path = store._path(name)
    except InvalidNameError:
        return
    objects = Path("/srv/skyhook-store/objects")
    assert Path(os.path.normpath(path)).is_relative_to(objects)
    assert os.path.normpath(path) == str(path)  # no '.' or '..' left to resolve
    assert validate_name(name) == name


@settings(max_examples=300, deadline=None, database=None)
@given(NAME_TEXT)
def test_dataset_names_cannot_inject_separators(name: str) -> None:
    """A dataset's objects all live under ``{name}/``: one name can never reach into another
    dataset's folder (``a`` and ``a/data``) or the store's top level."""
    try:
        mf.validate_dataset_name(name)
    except InvalidNameError:
        return
    assert "/" not in name and name not in (".", "..")
    for object_name in (
        mf.manifest_name(name),
        mf.lock_name(name),
        mf.schema_name(name),
        mf.object_name(name, "20260101T000000Z-00000000", 1, 2, 3),
    ):
        assert object_name.split("/")[0] == name
        validate_name(object_name)


def test_every_backend_validates_before_touching_storage() -> None:
    rados_store = RadosStore.from_url("rados://pool?conf=/nonexistent/ceph.conf")
    for store in (rados_store, open_store(f"memory://sec-{uuid.uuid4().hex}")):
        for operation in ("read", "stat", "delete", "get_meta"):
            with pytest.raises(InvalidNameError):
                getattr(store, operation)("../escape")
        with pytest.raises(InvalidNameError):
            store.write("a/../../b", b"x")


@pytest.mark.ceph
def test_the_store_user_cannot_administer_the_cluster(ceph_cluster: Any) -> None:
    """The URL's user has mon 'allow r': it reads the maps but cannot change the cluster."""
    import rados

    handle = rados.Rados(conffile=str(ceph_cluster.conf_path), name=f"client.{ceph_cluster.user}")
    handle.connect()
    try:
        pool = f"not-allowed-{uuid.uuid4().hex[:6]}"
        command = json.dumps({"prefix": "osd pool create", "pool": pool, "pg_num": 1})
        code, _, _ = handle.mon_command(command, b"", timeout=10)
        assert code == -errno.EACCES
        assert not handle.pool_exists(pool)
    finally:
        handle.shutdown()
