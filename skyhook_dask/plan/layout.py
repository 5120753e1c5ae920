"""One tree across the files of a dataset (or one file): its unified schema, the columns each
file has, and its objects with their event ranges and statistics -- what planning reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

import pyarrow as pa

from ..catalog.model import Dataset, File, TreeInfo
from ..exceptions import SchemaError, UnknownColumnError
from ..query.expr import Expr, columns_of

__all__ = ["TreeLayout"]


class TreeLayout:
    """One tree (a key such as ``"Events;1"``, or a name) of the files of ``source``.

    Columns whose type differs between files are left out of :attr:`schema` and listed in
    :attr:`conflicts`; a column some file lacks is nullable and comes back as nulls for it.
    """

    def __init__(self, source: Dataset | File, tree_spec: str) -> None:
        dataset = source if isinstance(source, Dataset) else source.dataset
        self.files: list[File] = list(source.files) if isinstance(source, Dataset) else [source]
        self.dataset_name = dataset.name if dataset is not None else "files"
        self.store_url = dataset.store_url if dataset is not None else ""
        self.version = (dataset.ingest_id, dataset.created) if dataset is not None else ("", "")
        self.tree_spec = tree_spec
        self.trees: list[TreeInfo] = [self._tree_of(f) for f in self.files]
        self.file_names = [f.name for f in self.files]

    def _tree_of(self, file: File) -> TreeInfo:
        try:
            return file.tree(self.tree_spec)
        except KeyError as exc:
            exc.add_note(f"in file {file.name!r} of dataset {self.dataset_name!r}")
            raise

    def __dask_tokenize__(self) -> object:
        return (
            type(self).__name__,
            self.store_url,
            self.dataset_name,
            self.version,
            self.tree_spec,
            tuple(self.file_names),
        )

    @cached_property
    def _unified(self) -> tuple[pa.Schema, dict[str, str]]:
        return _unify(self.trees, self.file_names)

    @property
    def schema(self) -> pa.Schema:
        """The tree's columns in first-seen order (those of one type in every file)."""
        return self._unified[0]

    @property
    def conflicts(self) -> dict[str, str]:
        """Columns whose type differs between files, each with the disagreement."""
        return self._unified[1]

    @cached_property
    def file_columns(self) -> list[frozenset[str]]:
        return [frozenset(t.schema.names) for t in self.trees]

    @cached_property
    def missing(self) -> list[frozenset[str]]:
        """Per file, the columns of :attr:`schema` it lacks (usually none)."""
        names = frozenset(self.schema.names)
        return [names - present for present in self.file_columns]

    def stats_of(self, columns: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Each object's statistics of ``columns``, by object name."""
        columns = sorted(set(columns))
        return {o.name: stats for t in self.trees
                for o, stats in zip(t.objects, t.stats(columns), strict=True)}  # fmt: skip

    @cached_property
    def columns_everywhere(self) -> list[str]:
        return [n for n in self.schema.names if all(n in c for c in self.file_columns)]

    def check_known(self, name: str) -> None:
        """A column of the tree, else SchemaError (types differ) or UnknownColumnError."""
        if name in self.conflicts:
            raise SchemaError(
                f"column {name!r} of dataset {self.dataset_name!r} has type "
                f"{self.conflicts[name]}; read those files separately"
            )
        if self.schema.get_field_index(name) < 0:
            raise UnknownColumnError(
                name, self.schema.names, where=f"dataset {self.dataset_name!r}"
            )

    def check_columns(self, predicate: Expr | None, where: str) -> None:
        """Every column of ``predicate`` must exist in every file (the scan needs it)."""
        for name in columns_of(predicate):
            for n, names in enumerate(self.file_columns):
                if name not in names:
                    raise UnknownColumnError(
                        name, names, where=f"file {self.file_names[n]!r} ({where})"
                    )


def _unify(trees: Sequence[TreeInfo], files: Sequence[str]) -> tuple[pa.Schema, dict[str, str]]:
    if len(trees) == 1:
        return trees[0].schema, {}
    fields: dict[str, pa.Field] = {}
    seen_in: dict[str, list[str]] = {}
    conflicts: dict[str, str] = {}
    for tree, file in zip(trees, files, strict=True):
        for field in tree.schema:
            seen_in.setdefault(field.name, []).append(file)
            known = fields.setdefault(field.name, field)
            if known.type != field.type and field.name not in conflicts:
                conflicts[field.name] = (
                    f"{known.type} in {seen_in[field.name][0]!r} but {field.type} in {file!r}"
                )
            elif field.nullable and not known.nullable:
                fields[field.name] = known.with_nullable(True)
    # A column some file lacks is null in that file's rows.
    schema = pa.schema(
        [
            f.with_nullable(True) if len(seen_in[name]) < len(trees) else f
            for name, f in fields.items()
            if name not in conflicts
        ]
    )
    return schema, conflicts
