"""Lightning checkpoints written through the run folder's atomic writer and read back safely.

Lightning's own TorchCheckpointIO writes the file in place: a kill while last.ckpt is rewritten
leaves it empty. Here a checkpoint is a temp file renamed over the old one, and loading never
unpickles code (`weights_only=True`: the state is plain tensors and containers).

Writing a checkpoint goes to one writer thread (`background`, the default): serialising, writing,
fsyncing and renaming the default SAE's 28 MB held the loop up ~50 ms an epoch, of which the I/O
waits overlap the next steps instead (benchmarks/RESULTS.md). The caller's thread first copies the
state's tensors (~4 ms; into RAM, also from a GPU), since the next step changes them in place: the
file holds the state at the save, as a synchronous save writes it. Writes, links and removals run
in the order they were asked for; the fit's end (teardown, also after an exception) waits for the
last of them, and a failed write is raised there or at the next checkpoint operation."""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from ..atomic import atomic_link, atomic_write
from ..errors import UserError


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict:
    """A checkpoint's dict, or one line naming the file and the way out."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"no checkpoint at {path}; pass run_dir=<an earlier run folder> with ckpt_path=last") from None
    except Exception as err:  # truncated (EOFError), garbage (UnpicklingError), not a zip (RuntimeError), ...
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        if path.parent.name == "checkpoints":  # a damaged checkpoint of a run (RunDir.CHECKPOINTS)
            fix = (
                f"resume from another checkpoint in {path.parent} with ckpt_path=<that .ckpt>, or delete the "
                f"run folder {path.parent.parent} and train again"
            )
        else:
            fix = "pass ckpt_path=<a .ckpt that sae-train wrote> (<run>/checkpoints/last.ckpt), or ckpt_path=last"
        raise UserError(f"{path} is not a readable checkpoint ({first[:200]}); {fix}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise UserError(f"{path} is not a Lightning checkpoint (no state_dict); pass ckpt_path=<a .ckpt of sae-train>")
    return ckpt


def check_checkpoint_fits(path: str | Path, module: torch.nn.Module) -> None:
    """A checkpoint of another SAE (another d_in or d_sae) is refused in one line, before Lightning
    would load it into this run's module and fail with a size-mismatch traceback."""
    state, own = load_checkpoint_file(path)["state_dict"], module.state_dict()
    for key, value in state.items():
        if key in own and hasattr(value, "shape") and tuple(value.shape) != tuple(own[key].shape):
            raise UserError(
                f"{path} holds {key} of shape {tuple(value.shape)}, but this run's is "
                f"{tuple(own[key].shape)}: it is a checkpoint of another SAE or data; resume it with "
                "its own domain and sae settings, or drop ckpt_path to start a new run"
            )


# Lightning's SLURM requeue checkpoint (hpc_ckpt_<n>.ckpt): the job is requeued, and so ended, right
# after it is saved, so it is written before the save returns.
SLURM_REQUEUE_PREFIX = "hpc_ckpt_"


def snapshot(obj: Any) -> Any:
    """`obj` with every tensor copied into RAM and every dict, list and tuple rebuilt around the
    copies; a dict keeps its type and attributes (a state_dict's `_metadata`), other values are shared."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        out = copy.copy(obj)
        for key, value in obj.items():
            out[key] = snapshot(value)
        return out
    if isinstance(obj, list):
        return [snapshot(value) for value in obj]
    if isinstance(obj, tuple):
        values = [snapshot(value) for value in obj]
        return type(obj)(*values) if hasattr(obj, "_fields") else type(obj)(values)  # a namedtuple takes fields
    return obj


class AtomicCheckpointIO(TorchCheckpointIO):
    def __init__(self, background: bool = True) -> None:
        self.background = background
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if not self.background or Path(path).name.startswith(SLURM_REQUEUE_PREFIX):
            self.wait()  # after the writes asked for before it
            atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
            return
        state = snapshot(checkpoint)  # now: the next step changes the tensors in place
        self._submit(atomic_write, path, lambda tmp: torch.save(state, tmp))

    def link(self, source: str | Path, path: str | Path) -> None:
        """`path` becomes a second name of the checkpoint `source` (atomic_link), after `source`'s
        own write when that is still in flight."""
        self._submit(atomic_link, source, path)

    def remove_checkpoint(self, path: str | Path) -> None:
        self._submit(super().remove_checkpoint, path)

    def _submit(self, job: Callable, *args: Any) -> None:
        self._raise_failed()
        if not self.background:
            job(*args)
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self._pending.append(self._writer.submit(job, *args))

    def _raise_failed(self, wait: bool = False) -> None:
        """Drop the finished jobs (all of them when `wait`), raising the first one that failed."""
        if wait:
            for job in self._pending:
                job.exception()  # waits; what it raised is raised below, in order
        done = [job for job in self._pending if job.done()]  # read once: a job may finish meanwhile
        self._pending = [job for job in self._pending if job not in done]
        for job in done:
            if job.exception() is not None:
                self._pending = []  # a failed write stops the run: the later jobs are not reported again
                raise job.exception()

    def wait(self) -> None:
        """Every checkpoint asked for is on disk (or its failure raised)."""
        self._raise_failed(wait=True)

    def teardown(self) -> None:
        try:
            self.wait()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint_file(path, map_location if map_location is not None else "cpu")


def prune_epoch_checkpoints(trainer, folder: Path) -> None:
    """Keep one epoch checkpoint (what callbacks.model_checkpoint.save_top_k=1 promises) after a
    fit: Lightning forgets the one it would replace when a resumed run's folder has moved since
    the checkpoint was written. Only `epoch=*.ckpt` files of this run's own checkpoints/ go."""
    keep = {Path(cb.best_model_path).resolve() for cb in trainer.checkpoint_callbacks if cb.best_model_path}
    if not keep:
        return
    for old in Path(folder).glob("epoch=*.ckpt"):
        if old.resolve() not in keep:
            old.unlink(missing_ok=True)
