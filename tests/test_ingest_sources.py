"""Ingesting from sources other than a local path: http(s) with byte ranges, file:// URLs, and
unreadable sources, which raise IngestError naming the source and leave nothing behind."""

from __future__ import annotations

import functools
import http.server
import io
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ingest_support import SMALL, assert_matches_root, memory_store, small_files

from skyhook_dask.catalog.model import list_datasets
from skyhook_dask.data import DATA_DIR
from skyhook_dask.exceptions import IngestError, InvalidNameError
from skyhook_dask.ingest.pipeline import write_dataset

DATA = DATA_DIR

store = pytest.fixture(memory_store)
small = pytest.fixture(scope="module")(small_files)


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """http.server plus single byte-range requests (what uproot's remote reads use)."""

    def log_message(self, *args: Any) -> None:
        pass

    def send_head(self) -> io.BytesIO | None:  # type: ignore[override]
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        data = Path(path).read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if match:
            start = int(match[1])
            body = data[start : int(match[2]) + 1 if match[2] else len(data)]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(body)


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    handler = functools.partial(RangeHandler, directory=str(DATA))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_http_url(store: Any, http_base: str) -> None:
    path = DATA / "nano_tree.root"
    url = f"{http_base}/{path.name}"
    dataset = write_dataset(store, [url], "remote", object_size=SMALL)
    attributes = dataset.files[0].getAttributes()
    assert attributes["url"] == url and attributes["name"] == path.name
    assert attributes["size"] == path.stat().st_size and attributes["access_time"] is None
    assert_matches_root(store, dataset, path)


def test_file_url(store: Any, small: list[Path]) -> None:
    path = small[0]
    dataset = write_dataset(store, [path.as_uri()], "local-url", object_size=SMALL)
    assert dataset.files[0].getAttributes()["size"] == path.stat().st_size
    assert_matches_root(store, dataset, path, stats=False)


@pytest.mark.parametrize("kind", ["missing", "not-root", "http-404"])
def test_unreadable_sources_raise_ingest_error(
    store: Any, tmp_path: Path, http_base: str, small: list[Path], kind: str
) -> None:
    if kind == "missing":
        url = str(tmp_path / "absent.root")
    elif kind == "not-root":
        url = str(tmp_path / "text.root")
        Path(url).write_bytes(b"this is not a ROOT file" * 100)
    else:
        url = f"{http_base}/absent.root"
    with pytest.raises(IngestError) as raised:
        write_dataset(store, [small[0], url], "bad")
    assert url in str(raised.value)
    assert "bad" not in list_datasets(store)
    assert not list(store.list("bad/"))  # the first file's objects were removed again


def test_invalid_dataset_names(store: Any, small: list[Path]) -> None:
    for name in ("", "a/b", "..", "with space"):
        with pytest.raises(InvalidNameError):
            write_dataset(store, [small[0]], name)
