"""The argument parser of the commands that read finished runs (sae-compare, sae-search, sae-diff,
sae-export, sae-serve). argparse answers a bad flag or value with its usage (up to six lines) and
then `prog: error: ...`; the Hydra commands answer with one `error:` line. This parser's error is a
UserError instead, which the command's wrapper (cli.plain_command) prints as that one line."""

from __future__ import annotations

import argparse
from typing import NoReturn

from .errors import UserError


class CommandParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message}; see {self.prog} --help")
