"""Shared fixtures: where the recorded feeds live, and a temporary numba-safe workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The recorded feeds: $FUSION_DATA_DIR, else ../shared/data beside the project."""
    return Path(os.environ.get("FUSION_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    d = data_dir()
    if not d.is_dir():
        pytest.skip(f"recorded feeds not found at {d} (set FUSION_DATA_DIR)")
    return d
