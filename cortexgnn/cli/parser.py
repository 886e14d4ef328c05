"""The argparse base of every ``cortexgnn`` command: one-line errors, boolean flags."""

from __future__ import annotations

import argparse

__all__ = ["BOOL", "Parser"]

#: ``--flag`` / ``--no-flag`` for every boolean setting
BOOL = argparse.BooleanOptionalAction


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: the problem and where to look."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
