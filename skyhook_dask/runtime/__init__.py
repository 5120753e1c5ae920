"""Execution: the mappers pipelines run over (threads in this process, or tasks on Dask
workers with the scheduler as driver), the worker plugin that holds each worker's storage
connection, the one function that calls the object class on an object, and running plans.

Layer: execution. Imports ``plan``, ``storage``, ``formats`` and the ground floor; ``ingest``
takes a mapper from its caller instead of importing one.
"""
