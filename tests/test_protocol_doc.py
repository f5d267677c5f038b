"""docs/protocol.md and the codec name the same fields, with the same required flags."""

from __future__ import annotations

import re

from fusion.protocol import FIELDS
from tests.conftest import ROOT

_SECTION = re.compile(r"^## `(\w+)`", re.M)
_ROW = re.compile(r"^\| `(\w+)` \| ([^|]+) \|", re.M)


def documented_fields() -> dict[str, dict[str, bool]]:
    text = (ROOT / "docs" / "protocol.md").read_text()
    heads = list(_SECTION.finditer(text))
    out: dict[str, dict[str, bool]] = {}
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        rows = _ROW.findall(text[head.end() : end])
        out[head.group(1)] = {name: req.strip() == "yes" for name, req in rows}
    return out


def test_document_and_codec_name_the_same_fields():
    doc = documented_fields()
    assert sorted(doc) == sorted(FIELDS)
    for kind, fields in FIELDS.items():
        assert doc[kind] == {name: required for name, (required, _) in fields.items()}, kind
