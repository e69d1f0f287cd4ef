"""Reads an offline W&B run file (`run-<id>.wandb`) without network: the final config and summary.

The file is a LevelDB-style log (a 7-byte file header, then records of a 7-byte header and a chunk,
never crossing a 32 KiB block) of protobuf `Record` messages; wandb 0.31 ships no Python reader.
W&B's service process writes it: `finish()` can return before the last records reach the file, so readers
wait for the run's exit record.
"""

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
FULL, LAST = 1, 4


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    position, pending = 7, b""
    while position + 7 <= len(data):
        left = BLOCK - position % BLOCK
        if left < 7:  # block trailer: padding
            position += left
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + 7])
        position += 7
        if (kind == 0 and length == 0) or position + length > len(data):
            break  # the end, or a record still being written
        pending += data[position : position + length]
        position += length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def finished_records(path: Path, timeout: float = 60.0) -> list[wandb_internal_pb2.Record]:
    """The run's records once its exit record is in the file (or `timeout` seconds have passed)."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(records(path))
        if any(record.HasField("exit") for record in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def config_and_summary(path: Path) -> tuple[dict, dict]:
    """The finished run's config and its summary (the last value of every logged key)."""
    config, summary = {}, {}
    for record in finished_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            for item in record.config.update:
                config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "history":
            for item in record.history.item:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return config, summary


def run_records(path: Path) -> dict:
    """The finished run's identity (`name`, `group`, `job_type`, `tags`), the metrics it defined (name -> summary
    kinds), its logged artifacts (name -> type, aliases, files) and every history key."""
    found: dict = {"metrics": {}, "artifacts": {}, "history_keys": set()}
    for record in finished_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            found |= {"id": run.run_id, "name": run.display_name, "group": run.run_group, "job_type": run.job_type,
                      "tags": list(run.tags)}  # fmt: skip
        elif kind == "metric" and record.metric.name:
            summary = record.metric.summary
            found["metrics"][record.metric.name] = {
                key for key in ("min", "max", "last") if getattr(summary, key)
            }
        elif kind == "artifact":
            artifact = record.artifact
            found["artifacts"][artifact.name] = {"type": artifact.type, "aliases": list(artifact.aliases),
                                                 "files": sorted(entry.path for entry in artifact.manifest.contents)}  # fmt: skip
        elif kind == "history":
            found["history_keys"] |= {item.key or "/".join(item.nested_key) for item in record.history.item}
    return found
