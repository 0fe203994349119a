"""``steer-pu fit`` and ``steer-pu report``: curve fits and the comparison report of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markdown import Markdown
from rich.table import Column, Table

from steer_pu.cli.common import console, literal_row, print_wide, user_errors

RunDirs = Annotated[
    list[Path],
    typer.Argument(
        help="run directories, folders containing run directories (any folder with run.json), or entry .json files"
    ),
]


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


@user_errors
def fit_command(
    run_dirs: RunDirs,
    csv: Annotated[Optional[Path], typer.Option(help="also write the fits as CSV here")] = None,
    json: Annotated[Optional[Path], typer.Option(help="also write the fits as JSON here")] = None,
) -> None:
    """Fit the paper's RQ curves to PrefOdds(m) and UtilOdds(m) per concept and method-form."""
    from steer_pu.io import atomic_write_text
    from steer_pu.report.collect import load_collection
    from steer_pu.report.fits import fit_collection, fits_csv, fits_json

    results = fit_collection(load_collection(run_dirs))
    table = Table(
        Column("concept", no_wrap=True), Column("method-form", no_wrap=True), "n",
        "Pref R²", "α", "β", "b", "m½ pref", "Util R²", "β_u", "b_u", "m½ util",
        "not fitted", title="RQ fits: PrefOdds = (αm+β)·D_p(m)+b, UtilOdds = β_u·D_u(m)+b_u",
    )  # fmt: skip
    notes = []
    for r in results:
        p, u = r.pref, r.util
        failed = [(n, why) for n, why in (("PrefOdds", r.pref_reason), ("UtilOdds", r.util_reason)) if why]
        notes += [f"{r.concept} {r.method_form} {n} not fitted: {why}" for n, why in failed]
        reasons = ", ".join(n for n, _ in failed)
        literal_row(
            table, r.concept, r.method_form, len(r.m),
            _num(p and p.r2), _num(p and p.alpha), _num(p and p.beta), _num(p and p.b),
            _num(p and p.breakdown_strength, 2),
            _num(u and u.r2), _num(u and u.beta, 2), _num(u and u.b, 2), _num(u and u.breakdown_strength, 2),
            reasons or "–",
        )  # fmt: skip
    # never wrap a row: each sweep stays one greppable line (as `tasks validate` does)
    print_wide(table, 160)
    for note in notes:  # full reasons below the table, one unwrapped line each
        console.print(note, soft_wrap=True, highlight=False, markup=False)
    if csv is not None:
        atomic_write_text(csv, fits_csv(results))
        console.print(f"wrote {csv}", markup=False)
    if json is not None:
        atomic_write_text(json, fits_json(results))
        console.print(f"wrote {json}", markup=False)


@user_errors
def report_command(
    run_dirs: RunDirs,
    out: Annotated[Path, typer.Option(help="report folder: README.md + PNG figures")],
    n_boot: Annotated[int, typer.Option(help="bootstrap resamples for the CIs")] = 1000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
) -> None:
    """Write a Markdown report comparing runs: frontiers, FA table, R² table, claims check."""
    from steer_pu.errors import SteerPuError
    from steer_pu.report.claims import claims_text
    from steer_pu.report.markdown import build_report, write_report

    if n_boot < 1:
        raise SteerPuError(f"--n-boot: must be at least 1, got {n_boot}")
    with console.status("fitting curves and bootstrapping"):
        report = build_report(run_dirs, n_boot=n_boot, seed=seed)
        written = write_report(report, out)
    console.print(Markdown(claims_text(report.fits, report.comparisons)))
    figures = sum(path.suffix == ".png" for path in written)
    console.print(f"wrote {out / 'README.md'}, points.csv and {figures} figure(s)", markup=False)
