"""Shared pieces of the command modules: consoles, the user-error wrapper, option parsers."""

from __future__ import annotations

import os
import sys
from functools import wraps
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from steer_pu.errors import SteerPuError

console = Console()
err_console = Console(stderr=True)

DEBUG_ENV = "STEER_PU_DEBUG"  # set to 1: an internal error shows its traceback
EXIT_FAILED_CHECK = 1  # a check ran and failed (verify, tasks validate, export lm-eval-tasks --check)
EXIT_USER_ERROR = 2  # unreadable or invalid input: one `error:` line
EXIT_BUG = 3  # an unexpected exception inside steer-pu: one line asking for a report

# The executor options `run` and `board` share (steer_pu.runs.executors)
ExecutorOption = Annotated[
    str, typer.Option(help="where the units run: inprocess, or ray (pip install steer-pu\\[ray])")
]
RayAddressOption = Annotated[
    Optional[str],
    typer.Option(help="with --executor ray: auto or HOST:PORT of a running cluster (default: a local one)"),
]
WorkersOption = Annotated[
    Optional[int],
    typer.Option(help="with --executor ray: worker actors (default: one per GPU, else CPUs / --threads)"),
]
WorkersPerGpuOption = Annotated[
    int,
    typer.Option(
        help="with --executor ray on CUDA: workers sharing each GPU (each declares 1/N of one); "
        "small models leave most of a GPU idle"
    ),
]


def warn_if_emulated(device: str, dtype: str) -> None:
    """One ``warning:`` line when the dtype is emulated on this CPU (devices.emulated_dtype_note)."""
    from steer_pu.devices import emulated_dtype_note, resolve_device

    note = emulated_dtype_note(resolve_device(device), dtype)
    if note:
        err_console.print(f"warning: {note}", highlight=False, soft_wrap=True, markup=False)


def literal(value: object) -> Text:
    """``value`` as rich text printed as is: never parsed as markup (``[/INST]``, ``[red]`` stay)."""
    return Text(str(value))


def literal_row(table: Table, *cells: object) -> None:
    """Add a row of user-controlled cells (names, paths, reasons) that prints every bracket literally."""
    table.add_row(*(cell if isinstance(cell, Text) else literal(cell) for cell in cells))


def print_wide(table: Table, width: int) -> None:
    """Print ``table`` at least ``width`` columns wide: a log file or a narrow terminal gets
    every cell whole, where rich would squeeze the columns to 80 and cut the numbers.

    Its title and string cells print literally (markup off: a run folder or model named with
    ``[/INST]`` prints as is); a styled cell is a rich ``Text``."""
    Console(width=max(console.width, width), highlight=False, markup=False).print(table)


def _print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _inputs(kwargs: dict) -> str:
    """The command's path arguments, to name the input an error without a file name came from."""
    paths = []
    for value in kwargs.values():
        paths += [v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, Path)]
    return f" (input: {', '.join(str(p) for p in paths)})" if paths else ""


def describe_error(exc: BaseException, kwargs: dict) -> str | None:
    """One line for an expected failure on bad input (exit 2), or None for a bug."""
    import json

    import yaml
    from pydantic import ValidationError

    from steer_pu.errors import first_field_error

    if isinstance(exc, SteerPuError):
        return str(exc)
    if isinstance(exc, OSError):
        where = exc.filename2 if exc.filename2 is not None else exc.filename
        reason = exc.strerror or str(exc)
        return f"{where}: {reason}" if where is not None else f"{reason}{_inputs(kwargs)}"
    if isinstance(exc, ValidationError):
        return f"invalid {exc.title}: {first_field_error(exc)}{_inputs(kwargs)}"
    if isinstance(exc, yaml.YAMLError):
        return f"invalid YAML: {' '.join(str(exc).split())}{_inputs(kwargs)}"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}{_inputs(kwargs)}"
    if isinstance(exc, UnicodeError):
        return f"not UTF-8 text: {exc}{_inputs(kwargs)}"
    if isinstance(exc, MemoryError):
        return f"out of memory: the input is too large{_inputs(kwargs)}"
    if isinstance(exc, RecursionError):
        return f"the input is nested too deeply{_inputs(kwargs)}"
    if isinstance(exc, ValueError):
        return f"{' '.join(str(exc).split()) or type(exc).__name__}{_inputs(kwargs)}"
    return None


def user_errors(func):
    """The CLI boundary: no exception leaves a command as a traceback.

    A user-caused error (a SteerPuError, or an expected failure on bad input: unreadable file,
    invalid JSON/YAML/schema, bad value) prints one ``error:`` line, brackets literal, and exits
    2; anything else is a bug: one line asking for a report and exit 3, with the traceback
    only when ``STEER_PU_DEBUG=1``.
    """
    if getattr(func, "_user_errors", False):
        return func

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if type(exc).__module__.startswith(("click", "typer")):  # Exit, Abort, usage errors: typer's own
                raise
            message = describe_error(exc, kwargs)
            if message is not None:
                _print_error(message)
                raise typer.Exit(EXIT_USER_ERROR) from None
            if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            _print_error(
                f"internal error ({type(exc).__name__}: {' '.join(str(exc).split())}): this is a bug, please report "
                f"it with the command you ran; {DEBUG_ENV}=1 shows the traceback"
            )
            sys.stderr.flush()
            raise typer.Exit(EXIT_BUG) from None

    wrapper._user_errors = True  # type: ignore[attr-defined]
    return wrapper


def parse_floats(text: str, field: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SteerPuError(f"--{field}: expected comma-separated numbers, got '{text}'") from None


def parse_hyperparams(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SteerPuError(f"--hp: expected NAME=VALUE, got '{item}'")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not a YAML value"
            raise SteerPuError(f"--hp '{item}': the value is not valid YAML ({problem})") from None
    return out


def unit_progress(width: int) -> Progress:
    """The progress bar of a run's units on stderr: description (``width`` wide, literal), bar, done/total, time."""
    return Progress(
        TextColumn(f"{{task.description:<{width}}}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    )
