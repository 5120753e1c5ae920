"""The dataset catalog: ``Dataset``, ``File`` and ``RootNode`` over a published manifest, and
the verification of a dataset's objects against it.

Layer: catalog. Imports ``storage``, ``formats`` and the ground floor.
"""

from __future__ import annotations

from .model import Dataset, File, ObjectEntry, RootNode, TreeInfo, list_datasets, load_dataset

__all__ = [
    "Dataset",
    "File",
    "ObjectEntry",
    "RootNode",
    "TreeInfo",
    "list_datasets",
    "load_dataset",
]
