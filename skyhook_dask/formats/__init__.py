"""The contracts shared with the C++ object class in ``cls/``: the wire protocol (requests,
results, metrics), the object layout (Arrow IPC files) and the dataset manifest (JSON).

Layer: formats. Imports ``query`` (expression trees travel in requests) and ``exceptions``.
"""
