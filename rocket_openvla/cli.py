"""What every entry point under `vla-scripts/` shares: parsing a draccus config once per job, and reporting user
errors as one message.

Under `torchrun` every process parses the command line; only rank 0 prints `--help`, argument errors and user
errors, so each appears once. A user error (`rocket_openvla.errors.UserError`, or a value draccus cannot parse)
ends the process with status 2 and no traceback; any other exception is a bug and keeps its traceback. torchrun
itself then reports the failed processes in a summary of its own.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import draccus
from draccus.utils import DraccusException

from rocket_openvla.errors import UserError

T = TypeVar("T")
USAGE_ERROR = 2
# A rank other than 0 waits this long before printing a user error: when rank 0 failed alike, torchrun stops the
# job in the meantime, so the message appears once; an error of that rank alone still shows.
OTHER_RANK_REPORT_DELAY_S = 3.0


def process_rank() -> int:
    """Global rank of this process under torchrun (0 without it)."""
    return int(os.environ.get("RANK", "0"))


@contextlib.contextmanager
def _only_rank_zero_prints() -> Iterator[None]:
    if process_rank() == 0:
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
        yield


def parse_config(config_class: type[T], args: Sequence[str] | None = None) -> T:
    """Parse `--config_path <yaml>` and field overrides into `config_class` (draccus); `--help` lists every field.

    Raises:
        SystemExit: after `--help` (0) or an unknown argument / invalid choice (2), printed by rank 0 only.
        UserError: a value that does not parse into its field's type.
    """
    with _only_rank_zero_prints():
        try:
            return draccus.parse(config_class, args=args)
        except DraccusException as error:
            raise UserError(_describe(error)) from error


def run_entry_point(main: Callable[[], object]) -> None:
    """Run `main()`; on a user error print `error: <message>` (once per job) and exit with status 2."""
    try:
        main()
    except UserError as error:
        if process_rank() != 0:
            time.sleep(OTHER_RANK_REPORT_DELAY_S)
            print(f"error (rank {process_rank()}): {error}", file=sys.stderr, flush=True)
        else:
            print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(USAGE_ERROR)


def _describe(error: DraccusException) -> str:
    """draccus's message, or that of the user error it wraps (it wraps errors raised while building a config)."""
    cause = error.__cause__ or error.__context__
    while cause is not None:
        if isinstance(cause, UserError):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    return str(error)
