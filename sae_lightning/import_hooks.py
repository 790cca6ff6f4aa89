"""One third-party module's top level run in a changed setting, whenever something imports it: a
meta-path finder that finds nothing itself, asks the other finders for that module and wraps the
loader they return. Entry points install such hooks (they change process-wide import state;
library code never does): quiet.drop_wandb_offline_notice and lean_imports.defer_heavy_helpers."""

from __future__ import annotations

import importlib.abc
import sys


class WrappedLoader(importlib.abc.Loader):
    """The loader it wraps, but for `exec_module`, which a subclass changes."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        raise NotImplementedError

    def __getattr__(self, name: str):  # get_source, is_package, ... as the real loader answers them
        return getattr(self.loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, module: str, wrapper: type[WrappedLoader]) -> None:
        self.module, self.wrapper = module, wrapper

    def find_spec(self, name, path, target=None):
        if name != self.module:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = self.wrapper(spec.loader)
                return spec
        return None


def wrap_exec(module: str, wrapper: type[WrappedLoader]) -> None:
    """Run `module`'s top level through `wrapper` when it is first imported; once per process (a
    module already loaded, or already hooked, is left as it is)."""
    if module in sys.modules or any(isinstance(f, _Finder) and f.module == module for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder(module, wrapper))
