"""The commands' own process settings (sae_lightning/runtime.py) for the test processes, applied here,
before the conftest or any test loads torch: its OpenMP runtime reads the wait policy once, when it
loads. The suite trains, embeds and labels inside its xdist workers (the session's runs, cli_runner's
in-process commands); left to OpenMP's default, each worker's idle threads spin on the cores the other
worker needs (test_interop's store and six small trainings: 99 s of CPU spinning, 22 s sleeping, on
two cores other jobs shared). In-process commands apply the same settings again, as their scripts do."""

from sae_lightning import runtime

runtime.apply({})
