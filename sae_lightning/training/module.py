"""SAEModule: the LightningModule around a pure-torch SAE. It owns the loss, the optimiser and
its schedule, the decoder-norm constraint, and the reconstruction metrics of docs/concepts.md.

It also owns the training state the loss needs: per latent, the training samples since it last
fired (AuxK's dead mask) and the current epoch's firing counts, as buffers, so they are in every
checkpoint and a resumed run counts on exactly where it stopped. Callbacks only read and log them."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.plugins.precision import MixedPrecision, Precision
from pytorch_lightning.utilities import GradClipAlgorithmType
from torch import Tensor

from ..models import build_sae
from ..run_schema import DENSE_THRESHOLD
from ..schemas.knobs import shown
from ..schemas.sae import SAEConfig
from ..schemas.training import ModuleConfig

log = logging.getLogger(__name__)


def lr_factor(total: int, warm: int, decay: str, decay_fraction: float):
    """The learning-rate multiplier per step: linear warm-up, then flat, then cosine or linear decay
    to zero over the last `decay_fraction` of the `total` steps."""
    decay_steps = int(total * decay_fraction)

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        left = total - step
        if decay == "none" or decay_steps == 0 or left >= decay_steps:
            return 1.0
        frac = max(left, 0) / decay_steps
        return frac if decay == "linear" else 0.5 * (1 - math.cos(math.pi * frac))

    return factor


def unfinished_warmups(total: int, warmup_steps: int, l1_warmup_steps: int) -> str | None:
    """The line warning that a fit of `total` optimiser steps ends inside a warm-up, or None: a small corpus
    at the defaults (827 texts: 20 steps of 512) never left it, and its SAE explained nothing (fve -1.3)."""
    short = [
        f"{name}={warm} ({what} reaches at most {min(total / warm, 1):.0%} of {of})"
        for name, warm, what, of in (
            ("module.warmup_steps", warmup_steps, "the learning rate", "module.lr"),
            ("sae.l1_warmup_steps", l1_warmup_steps, "the sparsity penalty", "its weight"),
        )
        if warm and total < warm
    ]
    if not short:
        return None
    return (
        f"the run takes {total} optimiser steps, fewer than {' and '.join(short)}; "
        "lower data.batch_size or raise trainer.max_epochs"
    )


def all_finite(x: Tensor) -> bool:
    """Whether x holds no NaN or Inf. A NaN or Inf anywhere makes the sum non-finite, so one
    reduction answers for a clean batch (isfinite(x).all() cost ~1.4 ms of a 50 ms step); only a
    non-finite sum, which finite values could also reach by overflow, is checked entry by entry."""
    return bool(torch.isfinite(x.sum(dtype=torch.float32))) or bool(torch.isfinite(x).all())


# The full divergence check (a pass over W_enc and the biases, ~0.6 ms: 2 % of a default step on
# CPU) runs every this many steps; checkpoints and the export check first whatever the step.
DIVERGENCE_CHECK_EVERY = 16


class NonFiniteError(RuntimeError):
    """Training met NaN/Inf or diverged. No checkpoint of the bad state was written."""


class SAEModule(pl.LightningModule):
    def __init__(self, sae: SAEConfig, settings: ModuleConfig | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else ModuleConfig()
        # Plain values for the loggers and the checkpoint (which loads with weights_only=True).
        self.save_hyperparameters({"sae": sae.to_dict(), **asdict(self.settings)})
        self.sae = build_sae(sae)
        d_sae = self.sae.cfg.d_sae
        self.register_buffer("samples_since_fired", torch.zeros(d_sae, dtype=torch.long))
        self.register_buffer("epoch_fired", torch.zeros(d_sae, dtype=torch.long))
        self.register_buffer("epoch_seen", torch.zeros((), dtype=torch.long))
        # The last validation's metrics and the step they were measured at, checkpointed: the export
        # knows whether they describe the final weights (see validate_now).
        self.val_metrics: dict[str, float] = {}
        self.val_metrics_step: int | None = None
        self._val: dict[str, Tensor] = {}
        self._val_pairs: list[tuple[Tensor, Tensor]] = []
        self._true_neighbours: tuple[Tensor, Tensor, Tensor] | None = None  # (queries, unit rows, k nearest), see below
        self._step_metrics: dict[str, Tensor] = {}  # this step's, for the loggers (log_step)
        self._healthy_step = -1  # the last update after which check_not_diverged found the weights sound

    # ---- set-up --------------------------------------------------------------------------------

    def on_fit_start(self) -> None:
        # b_dec from the data once, at a fresh start; a resumed run restores it from the checkpoint.
        if self.trainer.ckpt_path is None and self.global_step == 0 and self.settings.init_b_dec:
            dm = self.trainer.datamodule
            rows = dm.train_idx[: self.settings.init_sample_size]
            sample = dm.dataset[rows].to(self.device)
            if not all_finite(sample):
                raise NonFiniteError(
                    "the training sample for the b_dec init holds NaN or Inf embeddings; "
                    "rebuild the embedding store (sae-embed) and check its source"
                )
            # Every rank draws the same rows (the split is seeded), so b_dec agrees across DDP ranks.
            self.sae.init_b_dec(sample, self.settings.init_b_dec)

    def configure_optimizers(self):
        # fused: one kernel per parameter instead of ~10 (on CPU torch's default is the per-op loop)
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in self.sae.parameters())
        kwargs = {"lr": self.settings.lr, "betas": tuple(self.settings.betas), "fused": fused or None}
        if self.settings.weight_decay:
            # decay the weight matrices only: biases and JumpReLU's thresholds set offsets, not scales
            params = list(self.sae.parameters())
            groups = [
                {"params": [p for p in params if p.ndim >= 2], "weight_decay": self.settings.weight_decay},
                {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
            ]
            opt = torch.optim.AdamW(groups, **kwargs)
        else:
            opt = torch.optim.Adam(self.sae.parameters(), **kwargs)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        short = unfinished_warmups(total, self.settings.warmup_steps, getattr(self.sae.cfg, "l1_warmup_steps", 0))
        if short and self.trainer.is_global_zero:
            log.warning(short)
        factor = lr_factor(total, self.settings.warmup_steps, self.settings.decay, self.settings.decay_fraction)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        plugin = self.trainer.precision_plugin
        if gradient_clip_val and isinstance(plugin, MixedPrecision) and plugin.scaler is None:
            # bf16-mixed scales no loss, so the fused Adam's gradients are the true ones: Lightning's
            # refusal to clip a fused optimiser's (meant for fp16's scaler, which it unscales itself)
            # does not apply, and the unfused Adam costs ~4x the fused one's step on CPU.
            algorithm = GradClipAlgorithmType((gradient_clip_algorithm or "norm").lower())
            Precision.clip_gradients(plugin, optimizer, gradient_clip_val, algorithm)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    # ---- training --------------------------------------------------------------------------------

    def training_step(self, x: Tensor, batch_idx: int) -> dict:
        if not all_finite(x):
            raise NonFiniteError(
                f"batch at step {self.global_step} holds NaN or Inf embeddings; "
                "rebuild the embedding store (sae-embed) and check its source"
            )
        if batch_idx == 0:  # a new epoch (a run resumed mid-epoch restarts at its batch_idx, keeping the counts)
            self.epoch_fired.zero_()
            self.epoch_seen.zero_()
        out = self.sae(x)
        terms = self.sae.loss_terms(x, out, step=self.global_step, dead_mask=self.dead_mask)
        if not torch.isfinite(terms["loss"]):
            raise NonFiniteError(f"loss became {terms['loss'].item()} at step {self.global_step}")
        self._count_firing(out.fire_counts.detach().long(), len(x))
        # Step metrics only on the steps the loggers record (trainer.log_every_n_steps): each costs
        # a pass over the batch plus Lightning's bookkeeping, which at batch 512 on CPU rivals the step.
        if (self.global_step + 1) % max(1, self.trainer.log_every_n_steps) == 0:
            self._log_step_metrics(x, out, terms)
        return {"loss": terms["loss"]}

    @property
    def dead_mask(self) -> Tensor:
        """Latents that fired on none of the last `sae.dead_after_samples` training samples (AuxK's
        targets): the value cfg.json records (pipeline.sae_settings fits it to a small store first)."""
        return self.samples_since_fired >= self.sae.cfg.dead_after_samples

    def _count_firing(self, fired: Tensor, n: int) -> None:
        if self.trainer.world_size > 1:  # every rank keeps the same counters, hence the same AuxK targets
            fired = self.trainer.strategy.reduce(fired, reduce_op="sum")
            n *= self.trainer.world_size
        self.samples_since_fired += n
        self.samples_since_fired[fired > 0] = 0
        self.epoch_fired += fired
        self.epoch_seen += n

    def epoch_density(self) -> Tensor:
        """Each latent's firing rate over the current (or, after it, the last) epoch, on the CPU."""
        return self.epoch_fired.float().cpu() / max(int(self.epoch_seen), 1)

    def _log_step_metrics(self, x: Tensor, out, terms: dict[str, Tensor]) -> None:
        with torch.no_grad():
            stats = reconstruction_stats(x, out.x_hat)
            xf = x.float()
            sst = (xf - xf.mean(0)).pow(2).sum()  # the batch's own mean: a step's fve, not a sum over batches
            metrics = {f"train/{k}": v.detach() for k, v in terms.items()}
            metrics.update(
                {
                    "train/mse": stats["sse"] / len(x),
                    "train/fve": 1 - stats["sse"] / sst,
                    "train/nmse": stats["sse"] / stats["sq"],
                    "train/cos_sim": stats["cos"] / len(x),
                    "train/l0": out.l0,
                    "train/lr": self.lr_schedulers().get_last_lr()[0],
                }
            )
        self.log_step(metrics)
        # the bar's and the epoch line's (EpochLines reads callback_metrics), not the loggers'
        self.log("train/fve", metrics["train/fve"], prog_bar=True, logger=False)

    def log_step(self, metrics: dict[str, Tensor | float]) -> None:
        """Step metrics for the loggers, sent together at the batch's end (on_train_batch_end) the way
        Lightning sends what `self.log(on_step=True)` collected: the same names, values (as the tensors
        self.log makes of them), step and `epoch`, one row. self.log costs ~0.3 ms a key (it copies each
        metric's state per call): 14 keys every logging step were ~1 % of a default fit."""
        self._step_metrics.update({k: logged_value(v) for k, v in metrics.items()})

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self._step_metrics:  # callbacks' on_train_batch_end (DeadFeatureStats) have run: one row
            metrics, self._step_metrics = self._step_metrics, {}
            self.trainer._logger_connector.log_metrics(metrics)  # Lightning's own path to the loggers

    def on_after_backward(self) -> None:
        self.sae.remove_gradient_parallel_to_decoder_directions()

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        step = self.global_step  # this update's index: Lightning counts it done after this hook
        # W_dec's finiteness every step, from the row norms its renormalisation computes anyway (a
        # NaN or Inf entry makes its row's norm one); the other weights' pass every few steps.
        if not all_finite(self.sae.set_decoder_norm_to_unit_norm()):
            raise self._diverged(step, "W_dec", float("nan"))
        if (step + 1) % DIVERGENCE_CHECK_EVERY == 0:
            self.check_not_diverged(step)

    @torch.no_grad()
    def check_not_diverged(self, step: int) -> None:
        """Raise NonFiniteError when the weights after update `step` are NaN, Inf or above
        module.max_weight_rms. Run every DIVERGENCE_CHECK_EVERY steps, and before every checkpoint
        (on_save_checkpoint) and the export (on_train_end), so neither ever holds a diverged state:
        last.ckpt keeps the state from before the bad update."""
        if step <= self._healthy_step:
            return
        named = [(n, p) for n, p in self.sae.named_parameters() if p.numel() and p is not self.sae.W_dec]
        norms = torch.stack(torch._foreach_norm([p for _, p in named]))
        rms = norms / torch.tensor([math.sqrt(p.numel()) for _, p in named], device=norms.device)
        name, value = named[int(rms.argmax())][0], float(rms.max())  # argmax and max both take a NaN first
        limit = self.settings.max_weight_rms  # null: only NaN and Inf stop the run
        if not math.isfinite(value) or (limit is not None and value > limit):
            raise self._diverged(step, name, value)
        self._healthy_step = step

    def _diverged(self, step: int, name: str, value: float) -> NonFiniteError:
        unseen = step - self._healthy_step - 1  # updates since the weights were last found healthy
        when = f"at step {step}" + (f" or in the {unseen} steps before it" if unseen > 0 and name != "W_dec" else "")
        return NonFiniteError(
            f"training diverged {when}: the update made {name}'s rms {value:.3g} "
            f"(limit module.max_weight_rms={shown(self.settings.max_weight_rms)})"
        )

    def on_train_end(self) -> None:
        if self.global_step > 0:  # before the export (RunExport.on_fit_end runs after this)
            self.check_not_diverged(self.global_step - 1)

    # ---- validation: sums per rank, reduced once at the end ---------------------------------

    def on_validation_epoch_start(self) -> None:
        self._val = {}
        self._val_pairs = []

    def validation_step(self, x: Tensor, batch_idx: int) -> None:
        if not all_finite(x):
            raise NonFiniteError(f"validation batch {batch_idx} holds NaN or Inf embeddings; rebuild the store")
        out = self.sae.reconstruct(x)
        x_hat, fired = out.x_hat, out.fire_counts.float()
        stats = reconstruction_stats(x, x_hat)
        stats.update(n=torch.tensor(float(len(x)), device=x.device), sum_x=x.sum(0), active=fired.sum(), fired=fired)
        for key, value in stats.items():  # the first batch's own tensors: no `0 + t` copy
            self._val[key] = self._val[key] + value if key in self._val else value
        held = sum(len(a) for a, _ in self._val_pairs)
        if held < self.settings.retrieval_queries:
            take = self.settings.retrieval_queries - held
            self._val_pairs.append((x[:take].detach(), x_hat[:take].detach()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        metrics = self._validation_metrics()
        self.log_dict(metrics, on_epoch=True, sync_dist=True)  # already reduced: identical on every rank
        self.val_metrics = {k[len("val/") :]: float(v) for k, v in metrics.items()}
        self.val_metrics_step = self.global_step

    @torch.no_grad()
    def validate_now(self) -> None:
        """A validation pass outside Lightning's loop, for an export whose last validation is older
        than the weights (a run resumed from a checkpoint written at its last step). Every rank runs it."""
        was_training = self.training
        self.eval()
        self.on_validation_epoch_start()
        for i, x in enumerate(self.trainer.datamodule.val_dataloader()):
            self.validation_step(x.to(self.device), i)
        if self._val:
            self.val_metrics = {k[len("val/") :]: float(v) for k, v in self._validation_metrics().items()}
        self.val_metrics_step = self.global_step
        self.train(was_training)

    def _validation_metrics(self) -> dict[str, Tensor]:
        v = {k: self.trainer.strategy.reduce(t, reduce_op="sum") for k, t in self._val.items()}
        n = v["n"]
        density = v["fired"] / n
        metrics = {
            "val/fve": fve_from_sums(v["sse"], v["sq"], v["sum_x"], n),
            "val/nmse": v["sse"] / v["sq"],
            "val/mse": v["sse"] / n,
            "val/cos_sim": v["cos"] / n,
            "val/l0": v["active"] / n,
            "val/dense_frac": (density > DENSE_THRESHOLD).float().mean(),
            "val/never_fired_frac": (density == 0).float().mean(),
        }
        # one validation batch (the default's 8,192 rows hold 3,256) needs no copy
        x, x_hat = self._val_pairs[0] if len(self._val_pairs) == 1 else map(torch.cat, zip(*self._val_pairs))
        k = f"val/retrieval_recall@{self.settings.retrieval_k}"
        # The queries are the same validation rows every epoch: their unit rows and true neighbours are found once.
        n_near, cached = min(self.settings.retrieval_k, len(x) - 1), self._true_neighbours
        if n_near > 0 and (cached is None or cached[0].shape != x.shape or not torch.equal(cached[0], x)):
            unit = unit_rows(x)
            cached = self._true_neighbours = (x, unit, nearest(x, x, n_near, unit_corpus=unit))
        near = {"true": cached[2], "unit_x": cached[1]} if n_near > 0 else {}
        recall = retrieval_recall(x, x_hat, self.settings.retrieval_k, **near)
        metrics[k] = self.trainer.strategy.reduce(recall, reduce_op="mean")
        return metrics

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.global_step > 0:  # raised here, before Lightning writes anything
            self.check_not_diverged(self.global_step - 1)
        checkpoint["val_metrics"] = {"step": self.val_metrics_step, "metrics": dict(self.val_metrics)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("val_metrics") or {}
        self.val_metrics, self.val_metrics_step = dict(saved.get("metrics", {})), saved.get("step")
        self._healthy_step = int(checkpoint.get("global_step", 0)) - 1  # checked before it was written


def logged_value(value: Tensor | float) -> Tensor:
    """A metric as LightningModule.log stores it: a detached float32 tensor (float64 when that is
    torch's default dtype), so the loggers get the numbers self.log would have given them."""
    dtype = torch.get_default_dtype() if torch.get_default_dtype() == torch.float64 else torch.float32
    value = value.detach() if isinstance(value, Tensor) else torch.tensor(value, dtype=dtype)
    return value if value.dtype in (torch.float32, torch.float64) else value.to(dtype)


def reconstruction_stats(x: Tensor, x_hat: Tensor) -> dict[str, Tensor]:
    """Per-batch sums from which fve (with x's sum, fve_from_sums), nmse and cos_sim follow exactly
    over any number of batches."""
    x, x_hat = x.float(), x_hat.float()
    return {
        "sse": (x - x_hat).pow(2).sum(),
        "sq": x.pow(2).sum(),
        "cos": F.cosine_similarity(x, x_hat, dim=-1).sum(),
    }


def fve_from_sums(sse: Tensor, sq: Tensor, sum_x: Tensor, n: Tensor | float) -> Tensor:
    """Validation fve from sums over any number of batches: Σ‖x − x̄‖² = Σ‖x‖² − ‖Σx‖²/n, so the
    mean needs no second pass."""
    return 1 - sse / (sq - (sum_x**2).sum() / n)


def unit_rows(x: Tensor) -> Tensor:
    """x's rows scaled to unit length, in float32: what the cosine searches below multiply."""
    return F.normalize(x.float(), dim=-1)


def nearest(queries: Tensor, corpus: Tensor, k: int, unit_corpus: Tensor | None = None) -> Tensor:
    """Indices of each query's k nearest rows of `corpus` by cosine, its own row excluded: query i
    is corpus row i itself or its reconstruction (retrieval_recall's two searches). `unit_corpus`:
    `unit_rows(corpus)`, when the caller has it (validation's corpus is the same rows every epoch)."""
    unit = unit_rows(corpus) if unit_corpus is None else unit_corpus
    scores = (unit if queries is corpus else unit_rows(queries)) @ unit.T
    return scores.fill_diagonal_(-2).topk(k, dim=1).indices  # in place: no [n, n] mask and copy


def retrieval_recall(
    x: Tensor, x_hat: Tensor, k: int, true: Tensor | None = None, unit_x: Tensor | None = None
) -> Tensor:
    """Share of each query's k nearest neighbours (by cosine, among the other queries) found with the
    reconstruction x̂ that are also found with the original x: the embedding-model analogue of
    "loss recovered". `true`: x's own neighbours, `nearest(x, x, k)`, and `unit_x`: `unit_rows(x)`,
    when the caller has them."""
    n = len(x)
    k = min(k, n - 1)
    if k <= 0:
        return torch.tensor(float("nan"), device=x.device)
    if true is None or true.shape[1] != k:
        true = nearest(x, x, k, unit_corpus=unit_x)
    found = nearest(x_hat, x, k, unit_corpus=unit_x)
    hits = (true.unsqueeze(2) == found.unsqueeze(1)).any(2).float().sum(1)
    return (hits / k).mean()
