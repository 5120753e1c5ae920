"""The dataset catalog: ``Dataset``, ``File`` and ``RootNode`` over a published manifest, its
versions, and the verification of a dataset's objects against it.

Layer: catalog. Imports ``storage``, ``formats`` and the ground floor.
"""

from __future__ import annotations

from .model import Dataset, File, ObjectEntry, RootNode, TreeInfo, list_datasets, load_dataset
from .versions import DatasetVersion, list_versions

__all__ = [
    "Dataset",
    "DatasetVersion",
    "File",
    "ObjectEntry",
    "RootNode",
    "TreeInfo",
    "list_datasets",
    "list_versions",
    "load_dataset",
]
