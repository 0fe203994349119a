"""The ``steer-pu`` command line: a thin shell over the library modules."""

from __future__ import annotations

import os
import sys
from functools import wraps
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import SteerPuError

app = typer.Typer(help="Benchmark LLM control methods on the preference–utility frontier.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
methods_app = typer.Typer(help="Control methods.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(methods_app, name="methods")
console = Console()
err_console = Console(stderr=True)


def print_wide(table: Table, width: int) -> None:
    """Print ``table`` at least ``width`` columns wide: a log file or a narrow terminal gets
    every cell whole, where rich would squeeze the columns to 80 and cut the numbers."""
    Console(width=max(console.width, width), highlight=False).print(table)


def user_errors(func):
    """Print a user-caused error on one line and exit 2, instead of a traceback."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SteerPuError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


@models_app.command("list")
@user_errors
def models_list() -> None:
    """List the embedded models."""
    from .models import DEFAULT_MODEL, REGISTRY

    table = Table("name", "default layer", "chat template", "package", "description")
    for spec in REGISTRY.values():
        name = f"{spec.name} (default)" if spec.name == DEFAULT_MODEL else spec.name
        table.add_row(name, str(spec.default_layer), "yes" if spec.use_chat_template else "no", spec.package, spec.description)
    console.print(table)


@models_app.command("path")
@user_errors
def models_path(name: str) -> None:
    """Print the Hugging Face directory of a model (materialising it on first use)."""
    from .models import model_dir

    print(model_dir(name))


@methods_app.command("list")
@user_errors
def methods_list() -> None:
    """List the built-in control methods, their forms, defaults and strength grids."""
    from .methods import REGISTRY

    table = Table("method", "form", "strength grid", "hyper-parameters")
    for cls in REGISTRY.values():
        for form in cls.forms:
            method = cls(form)
            params = ", ".join(f"{k}={v}" for k, v in method.hyperparams.items()) or "-"
            table.add_row(cls.name, form, " ".join(f"{m:g}" for m in method.strengths()), params)
    console.print(table)


def _parse_floats(text: str, field: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SteerPuError(f"--{field}: expected comma-separated numbers, got '{text}'") from None


def _parse_hyperparams(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SteerPuError(f"--hp: expected NAME=VALUE, got '{item}'")
        out[key] = yaml.safe_load(value)
    return out


@app.command()
@user_errors
def run(
    out: Annotated[Path, typer.Option(help="run directory (resumable)")],
    model: Annotated[str, typer.Option(help="registry name, local HF directory or Hub id")] = "smollm2-135m",
    method: Annotated[str, typer.Option(help="built-in method name or package.module:Class")] = "diffmean",
    form: Annotated[Optional[str], typer.Option(help="vector, lora or local_weight (default: the method's first)")] = None,
    concepts: Annotated[Optional[str], typer.Option(help="comma-separated concept names (default: all)")] = None,
    strengths: Annotated[Optional[str], typer.Option(help="comma-separated strengths; 0 is always added")] = None,
    layer: Annotated[Optional[int], typer.Option(help="steering layer (default: the model's)")] = None,
    seed: int = 0,
    hp: Annotated[list[str], typer.Option(help="hyper-parameter override NAME=VALUE (repeatable)")] = [],
    suite: Annotated[Optional[Path], typer.Option(help="suite folder")] = None,
    threads: Annotated[int, typer.Option(help="torch threads (fixed for reproducible numbers)")] = os.cpu_count() or 1,
    artifact: Annotated[
        Optional[Path], typer.Option(help="ready artifact(s) trained elsewhere instead of --method (PATH or PATH/<concept>/)")
    ] = None,
) -> None:
    """Train or load a method per concept, sweep its strengths, score the test split."""
    from .artifacts import artifact_for, load_artifact
    from .methods import check_grid, get_method
    from .models import load_model
    from .run import RunConfig, execute
    from .tasks import concept_dirs, default_suite_dir

    suite_dir = (suite or default_suite_dir()).resolve()
    concept_names = [c.strip() for c in concepts.split(",")] if concepts else [p.name for p in concept_dirs(suite_dir)]
    if artifact is not None:
        # A ready artifact: no training; its form and layer come from the artifact itself.
        first = load_artifact(artifact_for(artifact, concept_names[0], len(concept_names)), layer)
        method, form, hyperparams = "artifact", first.form, {}
        layer = getattr(first, "layer", layer)
        if strengths is None:
            raise SteerPuError("--artifact needs --strengths: the grid must be declared before scoring")
        grid = check_grid(_parse_floats(strengths, "strengths"))
    else:
        method_obj = get_method(method)(form, **_parse_hyperparams(hp))
        form, hyperparams = method_obj.form, method_obj.hyperparams
        grid = check_grid(_parse_floats(strengths, "strengths") if strengths else list(method_obj.strengths()))
    with console.status(f"loading {model}"):
        loaded = load_model(model)
    config = RunConfig(
        model=model,
        method=method,
        form=form,
        layer=loaded.default_layer if layer is None else layer,
        concepts=concept_names,
        strengths=grid,
        seed=seed,
        hyperparams=hyperparams,
        suite_dir=str(suite_dir),
        threads=threads,
        artifact=str(artifact.resolve()) if artifact is not None else None,
    )
    progress = Progress(
        TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console
    )
    with progress:
        task = progress.add_task("units", total=None)

        def on_unit(description: str, done: int, total: int) -> None:
            progress.update(task, description=description, completed=done, total=total)

        table = execute(config, out, loaded=loaded, on_unit=on_unit)

    view = Table("concept", "m", "PrefOdds", "UtilOdds", "p", "u", title=f"{method}-{config.form} on {model}, layer {config.layer}")
    for row in table.itertuples():
        view.add_row(row.concept, f"{row.m:+g}", f"{row.pref_logodds:.3f}", f"{row.util_logodds:.3f}", f"{row.p:.3f}", f"{row.u:.3f}")
    console.print(view)
    console.print(f"results: {out / 'results.csv'}")


from .cli_tasks import tasks_app  # noqa: E402  (its commands use user_errors/console above)

app.add_typer(tasks_app, name="tasks")

from .cli_report import fit_command, report_command  # noqa: E402

app.command("fit")(fit_command)
app.command("report")(report_command)

from .cli_submit import schema, submit, verify  # noqa: E402

app.command("submit")(submit)
app.command("verify")(verify)
app.command("schema")(schema)

from .cli_lm_eval import register as _register_lm_eval  # noqa: E402

_register_lm_eval(app)

from .cli_leaderboard import leaderboard  # noqa: E402

app.command("leaderboard")(leaderboard)

from .cli_bench import bench_command, cost_command  # noqa: E402

app.command("bench")(bench_command)
app.command("cost")(cost_command)


def main() -> None:  # pragma: no cover - console script entry
    sys.exit(app())
