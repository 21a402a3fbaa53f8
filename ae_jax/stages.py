"""Stage keys: a stage's output is reused only when the hash of everything it depends on (config sections,
the digests of the artefacts it read, a format version) equals the key recorded beside it.

Otherwise it is recomputed, and the log says which inputs changed; records are written last and atomically,
so an interrupted stage never looks finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ae_jax import sharding

logger = logging.getLogger(__name__)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def digest(value: Any) -> str:
    """sha256 of a JSON-able value in canonical form (sorted keys)."""
    return hashlib.sha256(_canonical(value).encode()).hexdigest()


def file_digest(path: str, chunk: int = 1 << 22) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def arrays_digest(leaves) -> str:
    """sha256 over the shapes, dtypes and bytes of arrays (e.g. a model's parameter leaves)."""
    h = hashlib.sha256()
    for leaf in leaves:
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def flatten(d: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    out = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def changed_keys(old: dict, new: dict) -> list[str]:
    """'key: old -> new' for every flattened key whose value differs (digests shortened to 12 hex digits)."""
    a, b = flatten(json.loads(_canonical(old))), flatten(json.loads(_canonical(new)))

    def shown(v):
        return v[:12] if isinstance(v, str) and len(v) == 64 else v

    return [
        f"{k}: {shown(a.get(k, '(none)'))} -> {shown(b.get(k, '(none)'))}"
        for k in sorted(a.keys() | b.keys())
        if a.get(k) != b.get(k)
    ]


def write_atomically(path: str, write: Callable[[Any], None], mode: str = "wb", every_process: bool = False) -> str:
    """Write via a new temporary file in the same folder, then os.replace, so readers never see a partial file;
    the folder is created. Only process 0 writes (an output is written once), unless `every_process` (a cache each
    process reads back at once). Returns path."""
    if not (every_process or sharding.is_main()):
        return path
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, mode.replace("w", "x")) as f:  # a fresh file with the usual permissions
            write(f)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def write_json(path: str, value: Any) -> None:
    write_atomically(path, lambda f: json.dump(value, f, indent=1), mode="w")


def read_json(path: str) -> Any | None:
    """The JSON value at path, or None when the file is missing or unreadable (a damaged record is not reused)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def reusable(label: str, record_path: str, inputs: dict) -> dict | None:
    """The record at record_path if its key matches `inputs`, else None; logs which it is and why. Under several
    processes, process 0's answer is every process's, so that none skips work the others do together."""
    record = read_json(record_path)
    matches = record is not None and record.get("key") == digest(inputs)
    if sharding.agreed(matches):  # every process reuses, or every process computes, as process 0 decides
        if not matches:
            raise RuntimeError(
                f"{record_path}: process 0 reuses it but process {jax.process_index()} reads another record: "
                "every process must see the same files (one shared filesystem)"
            )
        logger.info(f"{label}: reused (inputs unchanged, key {record['key'][:12]})")
        return record
    if record is None:
        logger.info(f"{label}: computing (no earlier result in {os.path.dirname(record_path) or '.'})")
    else:
        changes = changed_keys(record.get("inputs", {}), inputs)
        logger.info(f"{label}: recomputing (inputs changed: {'; '.join(changes[:6]) or 'format'})")
    return None


def record(record_path: str, inputs: dict, **payload) -> dict:
    """Write the stage's record (its key, its inputs and payload; process 0 writes) and return it."""
    value = {"key": digest(inputs), "inputs": inputs, **payload}
    write_json(record_path, value)
    return value


def read_jsonl(path: str) -> list[dict] | None:
    """One JSON value per non-empty line (e.g. metrics.jsonl), or None when the file is missing."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
