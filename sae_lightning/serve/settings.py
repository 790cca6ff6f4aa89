"""sae-serve's settings: conf/serve.yaml (its one home), read into a dataclass."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from ..conf_dir import command_defaults


@dataclass(frozen=True)
class ServeSettings:
    host: str
    port: int
    compute_workers: int  # 0: one per core
    torch_threads: int
    embed_cache: int
    index_max_mib: int

    @property
    def workers(self) -> int:
        if self.compute_workers:
            return self.compute_workers
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def serve_settings(**overrides) -> ServeSettings:
    """conf/serve.yaml with the command's flags over it, each value checked by validate.py's rule
    (a port of 99999 would otherwise bind to 99999 mod 65536)."""
    from ..validate import check_settings

    conf = command_defaults("serve")
    check_settings("serve", {name: conf[name] for name in conf if name not in overrides})
    check_settings("serve", overrides, flags=True)
    return ServeSettings(**{f.name: overrides.get(f.name, conf[f.name]) for f in fields(ServeSettings)})
