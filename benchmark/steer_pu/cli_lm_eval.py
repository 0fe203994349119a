"""``steer-pu export ...`` (artifacts and task configs for lm-eval) and ``steer-pu lm-eval ...``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli import console, user_errors
from .errors import SteerPuError

export_app = typer.Typer(help="Export artifacts and task configs for lm-evaluation-harness.", no_args_is_help=True)

Strength = Annotated[float, typer.Option(help="control strength m baked into the export")]


@export_app.command("steered")
@user_errors
def export_steered_command(
    artifact: Annotated[Path, typer.Argument(help="vector intervention folder (intervention.safetensors)")],
    out: Annotated[Path, typer.Option(help="output .pt file for --model steered --model_args steer_path=…")],
    strength: Strength,
) -> None:
    """A vector artifact at strength m → lm-eval's `steered` model config."""
    from .export import export_steered

    console.print(f"wrote {export_steered(artifact, strength, out)}")


@export_app.command("peft")
@user_errors
def export_peft_command(
    artifact: Annotated[Path, typer.Argument(help="LoRA intervention folder (intervention.safetensors)")],
    out: Annotated[Path, typer.Option(help="output adapter folder for --model_args peft=…")],
    strength: Strength,
    base_model: Annotated[Optional[str], typer.Option(help="recorded as base_model_name_or_path")] = None,
) -> None:
    """A LoRA artifact at strength m → a peft adapter folder (B scaled by m, lora_alpha = r)."""
    from .export import export_peft

    console.print(f"wrote {export_peft(artifact, strength, out, base_model)}")


@export_app.command("lm-eval-tasks")
@user_errors
def export_tasks_command(
    suite: Annotated[Optional[Path], typer.Option(help="suite folder (default: the repo suite)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="task folder (default: tasks/lm_eval)")] = None,
    check: Annotated[bool, typer.Option(help="only report drift; exit 1 if the folder is stale")] = False,
) -> None:
    """(Re)generate the lm-eval task YAMLs (group steer_pu, one task per concept) from the suite."""
    from .lm_eval_tasks import task_dir
    from .lm_eval_tasks.generate import check_task_files, write_task_files
    from .tasks import default_suite_dir

    suite_dir, out_dir = suite or default_suite_dir(), out or task_dir()
    if check:
        problems = check_task_files(suite_dir, out_dir)
        for problem in problems:
            console.print(problem, highlight=False, soft_wrap=True)
        if problems:
            raise typer.Exit(1)
        console.print(f"{out_dir}: in sync with {suite_dir}")
        return
    written = write_task_files(suite_dir, out_dir)
    console.print(f"wrote {len(written)} files to {out_dir}")


def lm_eval_argv(args: list[str]) -> list[str]:
    """lm-eval's ``run`` arguments with the steer_pu defaults added (tasks, include path)."""
    if any(a == "--apply_chat_template" or a.startswith("--apply_chat_template=") for a in args):
        raise SteerPuError(
            "--apply_chat_template: the steer_pu tasks already render the model's chat template exactly "
            "as the native harness; applying it again would change the prompts"
        )
    from .lm_eval_tasks import GROUP, task_dir

    argv = list(args)
    if argv and argv[0] == "run":
        argv = argv[1:]
    if not any(a == "--include_path" or a.startswith("--include_path=") for a in argv):
        argv += ["--include_path", str(task_dir())]
    if not any(a in ("--tasks", "-t") or a.startswith("--tasks=") for a in argv):
        argv += ["--tasks", GROUP]
    return ["run", *argv]


@user_errors
def lm_eval_command(ctx: typer.Context) -> None:
    """Run lm-eval (every flag passes through) with the steer_pu tasks and `--model steer_pu` available.

    Defaults: --tasks steer_pu, --include_path tasks/lm_eval. The steer_pu model type takes
    --model_args pretrained=<name or dir>,artifact=<intervention folder>,strength=<m>.
    """
    argv = lm_eval_argv(list(ctx.args))
    from lm_eval.__main__ import cli_evaluate

    from .lm_eval_tasks import model as _register_model_type  # noqa: F401  (registers --model steer_pu)

    saved = sys.argv
    sys.argv = ["lm-eval", *argv]
    try:
        cli_evaluate()
    finally:
        sys.argv = saved


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
    app.command("lm-eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(lm_eval_command)
