"""``steer-pu models ...`` and ``steer-pu methods ...``: the two registries."""

from __future__ import annotations

import typer
from rich.table import Table

from steer_pu.cli.common import console, literal_row, user_errors

models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
methods_app = typer.Typer(help="Control methods.", no_args_is_help=True)


@models_app.command("list")
@user_errors
def models_list() -> None:
    """List the embedded models."""
    from steer_pu.models import DEFAULT_MODEL, REGISTRY

    table = Table("name", "default layer", "chat template", "package", "description")
    for spec in REGISTRY.values():
        name = f"{spec.name} (default)" if spec.name == DEFAULT_MODEL else spec.name
        literal_row(
            table, name, spec.default_layer, "yes" if spec.use_chat_template else "no", spec.package, spec.description
        )
    console.print(table)


@models_app.command("path")
@user_errors
def models_path(name: str) -> None:
    """Print the Hugging Face directory of a model (materialising it on first use)."""
    from steer_pu.models import model_dir

    print(model_dir(name))


@methods_app.command("list")
@user_errors
def methods_list() -> None:
    """List the built-in control methods, their forms, defaults and strength grids."""
    from steer_pu.methods import REGISTRY
    from steer_pu.methods.trained import PROVISIONAL_STEPS

    table = Table("method", "form", "budget", "dropout", "sub side", "strength grid", "other hyper-parameters")
    shown = {"steps", "batch_pairs", "dropout", "add_sub", "sub_mode"}
    for cls in REGISTRY.values():
        for form in cls.forms:
            method = cls(form)
            hp = method.hyperparams
            trained = "steps" in hp
            budget = f"{hp['steps']} steps × {hp['batch_pairs']} pairs" if trained else "training-free"
            if (cls.name, form) in PROVISIONAL_STEPS:
                budget += " (provisional)"
            dropout = f"{hp['dropout']:g}" if trained else "-"
            sub = ({"negate": "add+sub (−m)", "null": "add+sub (null-it-out)"}[hp["sub_mode"]]
                   if trained and hp["add_sub"] else ("add only" if trained else "-"))  # fmt: skip
            params = ", ".join(f"{k}={v}" for k, v in hp.items() if k not in shown) or "-"
            grid = " ".join(f"{m:g}" for m in method.strengths())
            literal_row(table, cls.name, form, budget, dropout, sub, grid, params)
    console.print(table)
