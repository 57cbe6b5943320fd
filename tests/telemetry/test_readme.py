"""docs/telemetry.md lists what the code declares, with the same units."""

from __future__ import annotations

from shared.settings import ROOT
from shared.telemetry import INSTRUMENTS, SPAN_JOB, SPAN_ONNX_RUN


def test_every_instrument_is_listed_with_its_kind_unit_and_attributes() -> None:
    doc = (ROOT / "docs" / "telemetry.md").read_text()
    section = doc[doc.index("## Metrics") : doc.index("## Resource usage")]
    for spec in INSTRUMENTS:
        row = next(line for line in section.splitlines() if line.startswith(f"| `{spec.name}` |"))
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1] == spec.kind and cells[2] == f"`{spec.unit}`", row
        for attribute in spec.attributes:
            assert f"`{attribute}`" in cells[3], row
    assert f"`{SPAN_ONNX_RUN}`" in section
    assert f"`{SPAN_JOB.format(kind='<kind>')}`" in section
