"""Sample CMS NanoAOD files (BSD-3, from the coffea project; see LICENSE-coffea-samples.txt)."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).parent
SAMPLES = ("nano_dimuon.root", "nano_dy.root", "nano_tree.root")


def sample_path(name: str = "nano_dimuon.root") -> Path:
    """Path of a bundled sample ROOT file."""
    path = DATA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"no bundled sample {name!r}; samples: {', '.join(SAMPLES)}")
    return path
