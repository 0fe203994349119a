"""The ``steer-pu`` command line, assembled: every command lives in its own module of this package.

Nothing imports this module but the console script and ``python -m steer_pu``; the command
modules share their helpers through :mod:`steer_pu.cli.common`.
"""

from __future__ import annotations

import sys

import typer

from steer_pu.cli.bench import bench_command, cost_command
from steer_pu.cli.board import board_command
from steer_pu.cli.common import user_errors
from steer_pu.cli.leaderboard import leaderboard
from steer_pu.cli.lm_eval import register as register_lm_eval
from steer_pu.cli.models import methods_app, models_app
from steer_pu.cli.report import fit_command, report_command
from steer_pu.cli.run import run_command
from steer_pu.cli.submit import schema, submit, verify
from steer_pu.cli.tasks import tasks_app

app = typer.Typer(help="Benchmark LLM control methods on the preference–utility frontier.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(methods_app, name="methods")
app.add_typer(tasks_app, name="tasks")
app.command("run")(run_command)
app.command("board")(board_command)
app.command("fit")(fit_command)
app.command("report")(report_command)
app.command("submit")(submit)
app.command("verify")(verify)
app.command("schema")(schema)
register_lm_eval(app)
app.command("leaderboard")(leaderboard)
app.command("bench")(bench_command)
app.command("cost")(cost_command)


def guard(typer_app: typer.Typer) -> None:
    """Put every command of ``typer_app`` (sub-apps included) behind the CLI boundary, so that
    a new command gets the exit-code rule without remembering ``@user_errors``."""
    for info in typer_app.registered_commands:
        info.callback = user_errors(info.callback)
    for group in typer_app.registered_groups:
        guard(group.typer_instance)


guard(app)


def main() -> None:  # pragma: no cover - console script entry
    sys.exit(app())
