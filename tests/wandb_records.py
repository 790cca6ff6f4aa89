"""Read an offline W&B run file (run-*.wandb) with wandb's own protobuf `Record` type.

wandb 0.31 no longer ships a Python reader; the file is a LevelDB-style log: a 7-byte header
(":W&B", magic, version), then 32 KiB blocks of records, each with a 7-byte header (crc32c,
little-endian length, type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4)."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK, HEADER, FILE_HEADER = 32768, 7, 7


def records(path: Path) -> list[pb.Record]:
    """The whole records on disk; a record whose bytes are still being written ends the list."""
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out, pos, pending = [], FILE_HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # a block's tail too short for a header is padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if pos + HEADER + length > len(data):
            break  # wandb-core is still writing this record (the file is read while it flushes)
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def finished_records(path: Path, timeout: float = 60.0) -> list[pb.Record]:
    """The records once the run's `exit` record is on disk: `run.finish()` returns before
    wandb-core has flushed the file."""
    deadline = time.monotonic() + timeout
    while True:
        found = records(path) if Path(path).stat().st_size > FILE_HEADER else []
        if any(r.WhichOneof("record_type") == "exit" for r in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def logged(path: Path) -> tuple[dict, dict, list[dict]]:
    """(config, summary, history rows) of a finished run file, values decoded from their JSON."""
    config, summary, history = {}, {}, []
    for r in finished_records(path):
        kind = r.WhichOneof("record_type")
        if kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == "summary":
            summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.summary.update})
        elif kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
    return config, summary, history
