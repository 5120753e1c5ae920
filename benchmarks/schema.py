"""The JSON Schema of a benchmark result file (``schema_version`` 1); README.md describes it."""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1
SYSTEM_NAMES = ["skyhook_pushdown", "skyhook_client", "uproot", "parquet"]

_number = {"type": "number", "minimum": 0}
_count = {"type": "integer", "minimum": 0}
_nullable_number = {"type": ["number", "null"]}
_n_columns = {"oneOf": [{"type": "integer", "minimum": 1}, {"const": "all"}]}
_samples = {"type": "array", "items": _number, "minItems": 1}

_storage = {
    "type": ["object", "null"],
    "required": ["calls", "rows_in", "bytes_read", "object_bytes", "wall_per_call_s"],
    "properties": {
        "calls": _count,
        "rows_in": _count,
        "bytes_read": _count,
        "object_bytes": _count,
        "bytes_returned": _count,
        "storage_elapsed_s": _number,
        "wall_per_call_s": _number,
    },
}

_case = {
    "type": "object",
    "required": [
        "system",
        "selectivity",
        "n_columns",
        "columns",
        "query",
        "threshold",
        "wall_s",
        "wall_s_min",
        "wall_samples",
        "client_cpu_s",
        "storage_cpu_s",
        "bytes_from_storage",
        "rows_out",
        "expected_rows",
        "selected_nbytes",
        "result_nbytes",
        "checksum",
        "agrees",
        "skyhook",
    ],
    "properties": {
        "system": {"enum": SYSTEM_NAMES},
        "selectivity": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "n_columns": _n_columns,
        "columns": {"type": ["array", "null"], "items": {"type": "string"}},
        "query": {"type": "string"},
        "threshold": {"type": "number"},
        "wall_s": _number,
        "wall_s_min": _number,
        "wall_samples": _samples,
        "client_cpu_s": _number,
        "storage_cpu_s": _nullable_number,
        "bytes_from_storage": _count,
        "rows_out": _count,
        "expected_rows": _count,
        "selected_nbytes": _count,
        "result_nbytes": _count,
        "checksum": {"type": "number"},
        "agrees": {"type": "boolean"},
        "skyhook": _storage,
    },
}

_ingest = {
    "type": "object",
    "required": [
        "events",
        "wall_s",
        "events_per_s",
        "source_mb_per_s",
        "arrow_mb_per_s",
        "objects",
        "object_size_target",
        "source_bytes",
        "stored_bytes",
        "arrow_bytes",
        "uproot_full_read",
    ],
    "properties": {
        "events": _count,
        "wall_s": _number,
        "events_per_s": _number,
        "source_mb_per_s": _number,
        "arrow_mb_per_s": _number,
        "objects": _count,
        "uproot_full_read": {
            "type": "object",
            "required": ["wall_s", "events_per_s", "source_mb_per_s"],
        },
    },
}

_scaling = {
    "type": "object",
    "required": ["worker_counts", "runs"],
    "properties": {
        "worker_counts": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        "runs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "system",
                    "workers",
                    "selectivity",
                    "n_columns",
                    "query",
                    "partitions",
                    "wall_s",
                    "wall_samples",
                    "rows_out",
                    "expected_rows",
                    "speedup",
                ],
                "properties": {
                    "system": {"enum": ["read_skyhook", "read_parquet"]},
                    "workers": {"type": "integer", "minimum": 1},
                    "n_columns": _n_columns,
                    "wall_s": _number,
                    "wall_samples": _samples,
                    "rows_out": _count,
                    "expected_rows": _count,
                    "speedup": _number,
                },
            },
        },
    },
}

_summary = {
    "type": "object",
    "required": [
        "selectivity",
        "n_columns",
        "rows_out",
        "selected_nbytes",
        "bytes_returned",
        "bytes_ratio",
        "client_over_pushdown_wall",
        "uproot_over_pushdown_wall",
        "parquet_over_pushdown_wall",
        "aims",
        "all_answers_agree",
    ],
    "properties": {
        "bytes_ratio": _number,
        "client_over_pushdown_wall": _number,
        "uproot_over_pushdown_wall": _number,
        "parquet_over_pushdown_wall": _number,
        "aims": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "all_answers_agree": {"type": "boolean"},
    },
}


def _side_by_side(*systems: str) -> dict[str, Any]:
    """Measurements of ``systems`` on one task: wall time and bytes from storage each."""
    return {
        "type": "object",
        "required": list(systems),
        "additionalProperties": {"type": "object", "required": ["wall_s", "bytes_from_storage"]},
    }


RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "skyhook_dask benchmark result",
    "type": "object",
    "required": [
        "schema_version",
        "name",
        "created",
        "events",
        "branches",
        "object_size",
        "store",
        "repeats",
        "machine",
        "cases",
        "ingest",
        "scaling",
        "call_overhead",
        "summary",
    ],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        # on Ceph: catalog.placement.dataset_placement of the dataset (OSD ids as strings)
        "placement": {
            "type": "object",
            "required": ["pool", "pg_num", "objects", "bytes", "osds"],
            "properties": {
                "osds": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["primary_objects", "copies"],
                    },
                }
            },
        },
        "name": {"type": "string"},
        "created": {"type": "string"},
        "events": {"type": "integer", "minimum": 1},
        "branches": {"type": "integer", "minimum": 1},
        "object_size": {"type": "integer", "minimum": 1},
        "store": {"type": "string"},
        "repeats": {"type": "integer", "minimum": 1},
        "machine": {"type": "object", "required": ["cpus", "python", "versions"]},
        "cases": {"type": "array", "items": _case, "minItems": 1},
        "ingest": _ingest,
        "scaling": {"oneOf": [_scaling, {"type": "null"}]},
        "call_overhead": {"type": "object", "required": ["wall_per_call_s"]},
        "skim": {  # results before the skimming case have none
            "type": "object",
            "required": ["query", "agrees", "systems", "wall_ratio", "bytes_ratio"],
            "properties": {"systems": _side_by_side("skyhook_pushdown", "uproot")},
        },
        "adl": {  # results before the ADL section have none
            "type": "array",
            "items": {
                "type": "object",
                "required": ["query", "value", "entries", "identical", "systems"],
                "properties": {"systems": _side_by_side("skyhook", "uproot")},
            },
        },
        "cli": {  # results before the command-line section have none
            "type": "object",
            "required": ["help", "ls", "query", "uproot_read", "query_vs_uproot"],
        },
        "summary": _summary,
        "profiles": {"type": "array"},
    },
}


def validate(result: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``result`` does not follow the schema."""
    import jsonschema

    jsonschema.validate(result, RESULT_SCHEMA)
