"""Training: the LightningModule (module.py: loss, optimiser, metrics, dead-latent counters), the
Trainer's callbacks, atomic checkpoints, deferred signals, and the sweep summary of a multirun."""
