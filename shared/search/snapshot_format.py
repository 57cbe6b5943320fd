"""The snapshot file format, apart from where snapshots are kept (``snapshots.py``).

    b"HSNAP001" | uint32 header length | JSON header | members, each 64-byte aligned

The header names the set and its SQL version, and each member's dtype, shape, offset
and CRC-32; the members are the int8 codes and per-row bounds (resident once loaded),
the row ids as JSON, the rows' metadata as JSON (a list: an object or null per row),
and the float32 rows, laid out so numpy maps each without a copy.

A header of another ``format`` is no snapshot to this code: the set loads from SQL and
is snapshotted again in this format (format 1 carried no metadata).
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

import numpy as np

from shared.search import quantized
from shared.search.loaded import SnapshotRowsError

MAGIC = b"HSNAP001"
ALIGN = 64
FORMAT = 2


#: Resident members, in blob order; ``rows`` follows them.
MEMBERS = ("codes", "offset", "scale", "residual", "code_norm", "code_sum", "norms", "recon_sq")


def layout(arrays: dict[str, np.ndarray], start: int) -> tuple[dict[str, Any], int]:
    """Offsets (from ``start``, aligned) of each member; returns (members, end)."""
    members: dict[str, Any] = {}
    pos = start
    for name, arr in arrays.items():
        pos = -(-pos // ALIGN) * ALIGN
        members[name] = {
            "offset": pos,
            "nbytes": int(arr.nbytes),
            "dtype": arr.dtype.str,
            "shape": list(arr.shape),
        }
        pos += arr.nbytes
    return members, pos


def encode(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[list[memoryview], int]:
    """The blob as buffers laid end to end (no copy of the arrays), and its length.
    ``header`` gains each member's place and CRC."""
    # The header's length depends on the offsets it lists: lay out with room to spare.
    for _ in range(3):
        members, _end = layout(arrays, head_size(header))
        header["members"] = members
    for name, arr in arrays.items():
        header["members"][name]["crc32"] = zlib.crc32(memoryview(arr).cast("B"))
    head = encode_head(header)
    parts = [memoryview(head)]
    pos = len(head)
    for name, arr in arrays.items():
        gap = header["members"][name]["offset"] - pos
        if gap < 0:
            raise ValueError("snapshot header outgrew its room")
        parts.append(memoryview(bytes(gap)))
        parts.append(memoryview(arr).cast("B"))
        pos += gap + arr.nbytes
    return parts, pos


def head_size(header: dict[str, Any]) -> int:
    """Bytes the encoded header takes, rounded up with slack for the CRCs and offsets
    still to be filled in."""
    size = len(encode_head(header)) + 64 * (len(MEMBERS) + 3) + 256
    return -(-size // ALIGN) * ALIGN


def encode_head(header: dict[str, Any]) -> bytes:
    body = json.dumps(header, separators=(",", ":")).encode()
    return MAGIC + struct.pack("<I", len(body)) + body


def head_length(first: bytes) -> int | None:
    """How many leading bytes hold the header, or None when this is no snapshot."""
    if len(first) < 12 or first[:8] != MAGIC:
        return None
    (size,) = struct.unpack("<I", first[8:12])
    return 12 + size


def decode_head(data: bytes) -> dict[str, Any] | None:
    """The header from the blob's leading bytes (at least ``head_length`` of them), or
    None when it is no snapshot of this format."""
    end = head_length(data)
    if end is None or end > len(data):
        return None
    header = json.loads(data[12:end].decode())
    return header if header.get("format") == FORMAT else None


def decode_members(
    buf: bytearray, start: int, members: dict[str, Any], names: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Views of ``buf`` (the blob from offset ``start``) as the named members, each
    checked against its CRC."""
    arrays = {}
    for name in names:
        m = members[name]
        dtype = np.dtype(m["dtype"])
        arr = np.frombuffer(buf, dtype, m["nbytes"] // dtype.itemsize, m["offset"] - start)
        if zlib.crc32(memoryview(arr).cast("B")) != m["crc32"]:
            raise ValueError(f"member {name}: CRC mismatch")
        arrays[name] = arr.reshape(m["shape"])
    return arrays


def row_check(qr: quantized.QuantizedRows) -> Any:
    """A check that rows agree with the codes and bounds they were quantised into."""

    def check(idx: np.ndarray, rows: np.ndarray) -> None:
        x = rows.astype(np.float64)
        c = qr.codes[idx].astype(np.float64) - quantized.LEVELS
        r = x - (qr.offset + qr.scale * c)
        res = np.sqrt(np.einsum("ij,ij->i", r, r))
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        ok = res <= qr.residual[idx].astype(np.float64) * (1 + 1e-9)
        ok &= np.abs(norms - qr.norms[idx]) <= 1e-9 * qr.norms[idx]
        if not ok.all():
            raise SnapshotRowsError(f"snapshot row {int(idx[~ok][0])} disagrees with its codes")

    return check
