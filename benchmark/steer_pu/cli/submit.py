"""``steer-pu submit`` / ``verify`` / ``schema``: leaderboard entries that anyone can re-check."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from steer_pu.cli.common import console, err_console, literal, print_wide, user_errors
from steer_pu.devices import DEVICE_HELP


@user_errors
def submit(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory (steer-pu run --out ...)")],
    name: Annotated[str, typer.Option(help="entry name: lowercase letters, digits, '.', '_', '-'")],
    out: Annotated[Path, typer.Option("-o", "--out", help="submission file, e.g. submissions/MODEL/NAME.json")],
    force: Annotated[bool, typer.Option(help="replace an existing file and artifact folder")] = False,
    copy_artifacts: Annotated[bool, typer.Option(help="copy small artifacts into a folder beside the file")] = True,
) -> None:
    """Write a submission file from a run directory (and copy its small artifacts beside it)."""
    from steer_pu.submission.build import build_submission, check_submission_path, write_submission

    check_submission_path(out)  # before the run is read and the model loaded
    prefix = out.stem if copy_artifacts else None
    sub, copies = build_submission(run_dir, name, prefix)
    write_submission(sub, out, copies, force=force)
    not_copied = sorted(n for n, c in sub.concepts.items() if c.artifact is not None and c.artifact.path is None)
    console.print(
        f"wrote {out}: {sub.method.name}-{sub.method.form} on {sub.model.name}, suite {sub.suite.version}, "
        f"mean FA {sub.suite_score.mean_fa:.4f} [{sub.suite_score.ci_low:.4f}, {sub.suite_score.ci_high:.4f}]",
        highlight=False, soft_wrap=True, markup=False,
    )  # fmt: skip
    if copies:
        console.print(
            f"artifacts: {len(copies)} folder(s) under {out.parent / prefix}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    if not_copied:
        console.print(
            f"{len(not_copied)} artifact(s) too large to copy (recorded by sha256); "
            "reviewers verify them with --retrain",
            highlight=False, soft_wrap=True,
        )  # fmt: skip


@user_errors
def verify(
    file: Annotated[Path, typer.Argument(help="a submission JSON file")],
    retrain: Annotated[
        bool, typer.Option(help="re-train built-in methods from the recorded seed and hyper-parameters")
    ] = False,
    rescore: Annotated[
        bool, typer.Option(help="re-score the artifacts with the harness (--no-rescore: hashes and numbers only)")
    ] = True,
    concepts: Annotated[
        Optional[str], typer.Option(help="re-score only these comma-separated concepts (other checks cover all)")
    ] = None,
    model: Annotated[
        Optional[str], typer.Option(help="load this model name or local directory instead of the recorded one")
    ] = None,
    suite: Annotated[Optional[Path], typer.Option(help="suite folder (default: the repo suite)")] = None,
    threads: Annotated[
        Optional[int], typer.Option(help="torch threads (default: as recorded, capped at the CPU count)")
    ] = None,
    pairs: Annotated[
        Optional[int], typer.Option(help="spot check: re-score only the first N test pairs of each concept")
    ] = None,
    lm_eval: Annotated[
        Optional[Path],
        typer.Option("--lm-eval", help="also compare lm-eval --log_samples output (file or folder) with the entry"),
    ] = None,
    strength: Annotated[float, typer.Option(help="the strength m the lm-eval run was made at (with --lm-eval)")] = 0.0,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    dtype: Annotated[
        Optional[str], typer.Option(help="model dtype of the re-score (default: the entry's; tolerance follows it)")
    ] = None,
) -> None:
    """Check a submission: schema, hashes, recomputed numbers, and a re-score; exit 1 on any mismatch."""
    from steer_pu.submission.verify import compare_lm_eval
    from steer_pu.submission.verify import verify as run_verify

    started = time.perf_counter()
    names = [c.strip() for c in concepts.split(",") if c.strip()] if concepts else None
    report = run_verify(
        file,
        rescore=rescore,
        retrain=retrain,
        concepts=names,
        model=model,
        suite_dir=suite,
        threads=threads,
        pairs=pairs,
        device=device,
        dtype=dtype,
    )
    if lm_eval is not None:
        compare_lm_eval(report, lm_eval, strength)
    sub = report.submission
    rescore_col = "retrain" if retrain else "re-score"
    table = Table(
        Column("concept", no_wrap=True), "numbers", "suite", "artifact", rescore_col, "text",
        Column("max |ΔNLL|", no_wrap=True), "FA", "result",
        title=literal(f"{file}: {sub.method.name}-{sub.method.form} on {sub.model.name}"),
    )  # fmt: skip
    for name, result in sorted(sub.concepts.items()):
        statuses = [report.status(name, what) for what in ("numbers", "suite", "artifact", "rescore")]
        if lm_eval is not None and report.status(name, "lm-eval") == "FAIL":
            statuses[-1] = "FAIL"  # shown in the re-score column; the reason is printed below
        # generations: the offline checks of the section, then the token-for-token regeneration
        text = [report.status(name, what) for what in ("generations", "regenerate")]
        statuses.append("FAIL" if "FAIL" in text else "ok" if "ok" in text else "-")
        fresh = report.rescored.get(name)
        ok = all(s != "FAIL" for s in statuses)
        table.add_row(
            literal(name), *statuses,
            f"{fresh['max_dnll']:.2e}" if fresh else "-",
            f"{result.fa:.4f}",
            Text("pass", style="green") if ok else Text("FAIL", style="bold red"),
        )  # fmt: skip
    print_wide(table, 120)
    for check in report.failures():
        err_console.print(
            f"[bold red]FAIL[/] {escape(f'{check.scope} {check.what}: {check.detail}')}",
            highlight=False,
            soft_wrap=True,
        )
    elapsed = time.perf_counter() - started
    spot = f" (first {pairs} pairs each)" if pairs and not retrain else ""
    scope = f"{len(report.rescored)} concept(s) re-scored{spot}" if report.rescored else "not re-scored"
    if report.ok and report.suite_note:  # an entry on an older suite release: say what could be checked
        console.print(
            f"verified on an {report.suite_note}; mean FA {sub.suite_score.mean_fa:.4f}; {scope} ({elapsed:.1f} s)",
            highlight=False, soft_wrap=True, markup=False,
        )  # fmt: skip
        return
    if report.ok:
        console.print(
            f"verified: suite {sub.suite.version}, mean FA {sub.suite_score.mean_fa:.4f}; model, suite and artifact "
            f"hashes match; numbers recomputed; {scope} ({elapsed:.1f} s)",
            highlight=False, soft_wrap=True, markup=False,
        )  # fmt: skip
        return
    console.print(f"NOT verified: {len(report.failures())} check(s) failed ({elapsed:.1f} s)", highlight=False)
    raise typer.Exit(1)


@user_errors
def schema(
    out: Annotated[
        Optional[Path], typer.Option("-o", "--out", help="write here (e.g. submissions/schema.json) instead of stdout")
    ] = None,
) -> None:
    """Print (or write) the JSON Schema of submission files."""
    from steer_pu.io import atomic_write_text
    from steer_pu.submission.schema import schema_text

    if out is None:
        print(schema_text(), end="")
    else:
        atomic_write_text(out, schema_text())
        console.print(f"wrote {out}", highlight=False, markup=False)
