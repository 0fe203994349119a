"""``steer-pu export ...`` (artifacts and task configs for lm-eval) and ``steer-pu lm-eval ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from steer_pu.cli.common import console, user_errors
from steer_pu.models import DEFAULT_MODEL

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
    from steer_pu.integrations.export import export_steered

    console.print(f"wrote {export_steered(artifact, strength, out)}", markup=False)


@export_app.command("peft")
@user_errors
def export_peft_command(
    artifact: Annotated[Path, typer.Argument(help="LoRA intervention folder (intervention.safetensors)")],
    out: Annotated[Path, typer.Option(help="output adapter folder for --model_args peft=…")],
    strength: Strength,
    base_model: Annotated[
        Optional[str],
        typer.Option(help="registry name or HF folder of the base model (default: the one the artifact records)"),
    ] = None,
) -> None:
    """A LoRA artifact at strength m → a peft adapter folder (B scaled by m, lora_alpha = r)."""
    from steer_pu.integrations.export import export_peft

    model = base_model or _recorded_model(artifact)
    console.print(f"wrote {export_peft(artifact, strength, out, model)}", markup=False)


def _recorded_model(artifact: Path) -> str:
    """The model an artifact folder's meta.json names (run artifacts record it)."""
    from steer_pu.errors import SteerPuError
    from steer_pu.interventions import read_meta

    meta = read_meta(artifact) if (Path(artifact) / "meta.json").is_file() else {}
    model = meta.get("model") if isinstance(meta, dict) else None
    if not isinstance(model, str) or not model:
        raise SteerPuError(f"{artifact}: meta.json records no 'model'; name the base model with --base-model")
    return model


@export_app.command("delta")
@user_errors
def export_delta_command(
    artifact: Annotated[Path, typer.Argument(help="local-weight intervention folder (intervention.safetensors)")],
    out: Annotated[Path, typer.Option(help="output folder for --model_args delta=…")],
    strength: Strength,
    model: Annotated[str, typer.Option(help="registry name or HF folder of the base model")] = DEFAULT_MODEL,
) -> None:
    """A local-weight artifact at strength m → an lm-eval `delta=` folder (zeros except block L)."""
    from steer_pu.integrations.export import export_delta
    from steer_pu.models import model_dir

    console.print(f"wrote {export_delta(artifact, strength, out, model_dir(model))}", markup=False)


@export_app.command("lm-eval-tasks")
@user_errors
def export_tasks_command(
    suite: Annotated[Optional[Path], typer.Option(help="suite folder (default: the repo suite)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="task folder (default: tasks/lm_eval)")] = None,
    check: Annotated[bool, typer.Option(help="only report drift; exit 1 if the folder is stale")] = False,
) -> None:
    """(Re)generate the lm-eval task YAMLs (group steer_pu, one task per concept) from the suite."""
    from steer_pu.integrations.lm_eval.generate import check_task_files, write_task_files
    from steer_pu.paths import default_suite_dir, lm_eval_task_dir

    suite_dir, out_dir = suite or default_suite_dir(), out or lm_eval_task_dir()
    if check:
        problems = check_task_files(suite_dir, out_dir)
        for problem in problems:
            console.print(problem, highlight=False, soft_wrap=True, markup=False)
        if problems:
            raise typer.Exit(1)
        console.print(f"{out_dir}: in sync with {suite_dir}", markup=False)
        return
    written = write_task_files(suite_dir, out_dir)
    console.print(f"wrote {len(written)} files to {out_dir}", markup=False)


@user_errors
def lm_eval_command(ctx: typer.Context) -> None:
    """Run lm-eval (every flag passes through) with the steer_pu tasks and `--model steer_pu` available.

    Defaults: --tasks steer_pu, --include_path tasks/lm_eval. The steer_pu model type takes
    --model_args pretrained=<name or dir>,artifact=<intervention folder>,strength=<m>.
    """
    from steer_pu.integrations.lm_eval.runner import run_lm_eval

    run_lm_eval(list(ctx.args))


def lm_eval_tasks_path_command() -> None:
    """Print the installed lm-eval task folder: `lm_eval --include_path "$(steer-pu lm-eval-tasks-path)"`."""
    from steer_pu.paths import lm_eval_task_dir

    # plain print: a path must come out whole (rich would wrap a long one) for $(...) to use it
    print(lm_eval_task_dir())


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
    app.command("lm-eval-tasks-path")(lm_eval_tasks_path_command)
    app.command("lm-eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(lm_eval_command)
