"""Moving a checkpoint between machines in pieces: shards of at most a few MiB and a manifest of their sha256
checksums, written in one go or several; reassembled and checked whole before it is used (`grok resnet --export-to`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..store import atomic_file


def export_checkpoint(ckpt, out_dir, shard_mib: int = 15, parts=None) -> list[Path]:
    """Split a checkpoint into shards of at most shard_mib MiB plus a manifest with checksums.

    parts: the shard numbers to write (all by default), for carrying a large checkpoint in several goes.
    A full-width checkpoint (weights plus Adam's two moments, float32) is about 128 MiB: 9 shards of 15 MiB.
    """
    ckpt, out = Path(ckpt), Path(out_dir)
    data = ckpt.read_bytes()
    size = shard_mib << 20
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    manifest = {"name": ckpt.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "shards": [hashlib.sha256(c).hexdigest() for c in chunks]}
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{ckpt.name}.manifest.json"]
    written[0].write_text(json.dumps(manifest, indent=1))
    for i in (range(len(chunks)) if parts is None else parts):
        (out / f"{ckpt.name}.part{i:02d}").write_bytes(chunks[i])
        written.append(out / f"{ckpt.name}.part{i:02d}")
    return written


def import_checkpoint(src_dirs, dest_dir) -> Path | None:
    """Reassemble a checkpoint from shards spread over src_dirs into dest_dir (atomically); None if incomplete.

    Every shard and the whole file are checked against the manifest; a damaged shard raises ValueError.
    """
    srcs = [Path(d) for d in ([src_dirs] if isinstance(src_dirs, (str, Path)) else src_dirs)]
    manifests = sorted(m for d in srcs if d.exists() for m in d.glob("*.manifest.json"))
    if not manifests:
        return None
    man = json.loads(manifests[0].read_text())
    blobs = []
    for i, digest in enumerate(man["shards"]):
        found = [d / f"{man['name']}.part{i:02d}" for d in srcs if (d / f"{man['name']}.part{i:02d}").exists()]
        if not found:
            return None
        blob = found[0].read_bytes()
        if hashlib.sha256(blob).hexdigest() != digest:
            raise ValueError(f"shard {found[0]} does not match its checksum")
        blobs.append(blob)
    data = b"".join(blobs)
    if len(data) != man["bytes"] or hashlib.sha256(data).hexdigest() != man["sha256"]:
        raise ValueError(f"reassembled {man['name']} does not match its manifest")
    dest = Path(dest_dir) / man["name"]
    with atomic_file(dest) as tmp:
        tmp.write_bytes(data)
    return dest
