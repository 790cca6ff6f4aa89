"""Lightning's progress bar on stderr. TQDMProgressBar writes to stdout, where a run's results
(the summary sae-train prints at the end) and anything piped from it belong."""
from __future__ import annotations

import sys

from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm


class StderrProgressBar(TQDMProgressBar):
    """The same bars as TQDMProgressBar (descriptions, positions, leave), written to stderr."""

    def _tqdm(self, desc: str, leave: bool, offset: int = 0, **kwargs) -> Tqdm:
        return Tqdm(desc=desc, position=2 * self.process_position + offset, disable=self.is_disabled, leave=leave,
                    dynamic_ncols=True, file=sys.stderr, bar_format=self.BAR_FORMAT, **kwargs)

    def init_sanity_tqdm(self) -> Tqdm:
        return self._tqdm(self.sanity_check_description, leave=False)

    def init_train_tqdm(self) -> Tqdm:
        return self._tqdm(self.train_description, leave=True, smoothing=0)

    def init_predict_tqdm(self) -> Tqdm:
        return self._tqdm(self.predict_description, leave=True, smoothing=0)

    def init_validation_tqdm(self) -> Tqdm:
        has_main_bar = self.trainer.state.fn != "validate"  # no train bar under trainer.validate()
        return self._tqdm(self.validation_description, leave=not has_main_bar, offset=int(has_main_bar))

    def init_test_tqdm(self) -> Tqdm:
        return self._tqdm("Testing", leave=True)
