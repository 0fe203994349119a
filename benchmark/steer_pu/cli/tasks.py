"""``steer-pu tasks ...``: list, validate, import and report on concept-task suites."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Column, Table

from steer_pu.cli.common import console, literal_row, print_wide, user_errors
from steer_pu.devices import DEVICE_HELP, DTYPE_HELP
from steer_pu.io import display_path
from steer_pu.models import DEFAULT_MODEL

tasks_app = typer.Typer(help="The concept-task suite.", no_args_is_help=True)


@tasks_app.command("list")
@user_errors
def tasks_list(suite: Annotated[Optional[Path], typer.Option(help="suite folder")] = None) -> None:
    """List the concepts of a suite with their format and split sizes."""
    from steer_pu.paths import default_suite_dir
    from steer_pu.suite.concepts import load_concepts

    table = Table("concept", "format", "version", "train", "test", "positive pole")
    for c in load_concepts(suite or default_suite_dir()):
        literal_row(table, c.name, c.card.format, c.card.version, len(c.train), len(c.test), c.card.positive_pole)
    console.print(table)


class Bump(str, Enum):
    major = "major"
    minor = "minor"
    patch = "patch"


class ImportFormat(str, Enum):
    persona = "persona"
    bipo = "bipo"
    axbench = "axbench"


@tasks_app.command("validate")
@user_errors
def tasks_validate(
    path: Annotated[
        Optional[Path], typer.Argument(help="a suite folder or one concept folder (default: the repo suite)")
    ] = None,
) -> None:
    """Check schema, ids, duplicates, balance, lengths, encoding, sizes and the manifest."""
    from steer_pu.suite.validate import validate

    report = validate(path)
    if report.problems:
        rows = [(display_path(p.path) + (f":{p.line}" if p.line else ""), p.rule, p.reason) for p in report.problems]
        table = Table("file:line", "rule", "problem", title=f"{len(rows)} problem(s)")
        for row in rows:
            literal_row(table, *row)
        # never wrap a row: each stays one greppable `file:line ... reason` line
        width = max(sum(len(cell) for cell in row) for row in rows) + 16
        print_wide(table, width)
        raise typer.Exit(1)
    table = Table(
        Column("concept", no_wrap=True), "format", "pairs", "train words", "test words", "Yes",
        caption="pairs: train/test; words: mean per pole, positive/negative; Yes: share of 'Yes' positives, train/test",
    )  # fmt: skip
    for c in report.concepts:
        tr, te = c.splits["train"], c.splits["test"]
        yes = (
            f"{tr.yes_fraction:.0%}/{te.yes_fraction:.0%}"
            if tr.yes_fraction is not None and te.yes_fraction is not None
            else "-"
        )
        literal_row(
            table, c.name, c.format or "?", f"{tr.pairs}/{te.pairs}",
            f"{tr.words_positive:.1f}/{tr.words_negative:.1f}", f"{te.words_positive:.1f}/{te.words_negative:.1f}", yes,
        )  # fmt: skip
    console.print(table)
    console.print(f"ok: {len(report.concepts)} concept(s), no problems")
    _print_audit(path)


def _print_audit(path: Path | None) -> None:
    """The shortcut audit of a valid suite or concept: a table, a length-control table per embedded
    tokenizer, and a warning per surface shortcut or failed length control."""
    import time

    from steer_pu.paths import default_suite_dir
    from steer_pu.suite.audit import JUDGED, SHORTCUT_LIMIT, audit_concept, embedded_tokenizers, length_balance
    from steer_pu.suite.concepts import load_concept, load_concepts

    started = time.perf_counter()
    folder = Path(path) if path is not None else default_suite_dir()
    concepts = [load_concept(folder)] if (folder / "card.yaml").is_file() else load_concepts(folder)
    tokenizers = embedded_tokenizers()  # tokenizers only: no model weights are loaded
    loaded_s = time.perf_counter() - started
    default = tokenizers.default
    unit = f"{default[0]} tokens" if default else "whitespace words"
    table = Table(
        Column("concept", no_wrap=True), "length", "first word", "function words", "bag of words", "top words",
        title="shortcut audit: held-out accuracy of model-free classifiers at picking the positive (chance 0.50)",
        caption=f"length ({unit}), first word and function words (punctuation + a fixed list) should stay <= "
        f"{SHORTCUT_LIMIT:.2f}; for presence concepts the bag of words' top words are the concept itself",
    )  # fmt: skip
    lengths = Table(
        Column("concept", no_wrap=True), *tokenizers.counters,
        title="length control per tokenizer",
        caption="pairs within 2 tokens / positive longer among unequal pairs / mean T+ - T- (train + test); "
        "ok: >= 90% within 2 and 40-60% longer",
    )  # fmt: skip
    warnings, length_warnings = [], []
    for concept in concepts:
        audit = audit_concept(concept, default[1] if default else None)
        cells = [f"{r.accuracy:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]" for r in audit.results]
        literal_row(table, concept.name, *cells, " ".join(audit.result("bag_of_words").top_features[:5]))
        warnings += [
            f"warning: {concept.name}: {r.name.replace('_', ' ')} picks the positive in {r.accuracy:.0%} of test pairs"
            + (f" (top: {' '.join(r.top_features[:3])})" if r.top_features else "")
            for r in audit.shortcuts
        ]
        row = []
        for model, count in tokenizers.counters.items():
            b = length_balance(concept, count)
            longer = "-" if b.positive_longer is None else f"{b.positive_longer:.0%}"
            row.append(f"{b.within_2:.0%} / {longer} / {b.mean_diff:+.2f} {'ok' if b.ok else 'FAIL'}")
            if not b.ok:
                length_warnings.append(
                    f"warning: {concept.name}: length control fails under the {model} tokenizer "
                    f"({b.within_2:.0%} of pairs within 2 tokens, positive longer in {longer} of unequal pairs)"
                )
        literal_row(lengths, concept.name, *row)
    print_wide(table, 150)
    if tokenizers.counters:
        print_wide(lengths, 150)
    for note in tokenizers.notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    for line in warnings + length_warnings:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    judged = ", ".join(JUDGED)
    console.print(f"shortcut warnings: {len(warnings)} ({judged} above {SHORTCUT_LIMIT:.2f})", markup=False)
    console.print(
        f"length-control warnings: {len(length_warnings)} (under {len(tokenizers.counters)} embedded "
        f"tokenizer(s), loaded in {loaded_s:.1f} s; audit {time.perf_counter() - started:.1f} s in all)",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip


@tasks_app.command("manifest")
@user_errors
def tasks_manifest(
    bump: Annotated[Optional[Bump], typer.Option(help="release changed files as a new version")] = None,
    suite: Annotated[Optional[Path], typer.Option(help="suite folder")] = None,
) -> None:
    """Rewrite MANIFEST.json (hashes + version); refuses changed files without --bump."""
    from steer_pu.paths import default_suite_dir
    from steer_pu.suite.manifest import MANIFEST_NAME, write_manifest

    suite_dir = suite or default_suite_dir()
    manifest = write_manifest(suite_dir, bump.value if bump else None)
    console.print(
        f"{display_path(suite_dir / MANIFEST_NAME)}: {manifest.suite} {manifest.version} sha256 {manifest.sha256}",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )


@tasks_app.command("import")
@user_errors
def tasks_import(
    fmt: Annotated[ImportFormat, typer.Argument(metavar="FORMAT", help="persona, bipo or axbench")],
    source: Annotated[
        str, typer.Argument(help="a local file, or else a local dataset folder or Hugging Face dataset id")
    ],
    concept: Annotated[str, typer.Option(help="name of the new concept folder (snake_case)")],
    suite: Annotated[Optional[Path], typer.Option(help="suite folder (default: the repo suite)")] = None,
    test_fraction: Annotated[
        Optional[float], typer.Option(help="share of pairs in the test split (default 0.33)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the train/test shuffle")] = 0,
    license: Annotated[Optional[str], typer.Option(help="license of the source (default: 'see source')")] = None,
    concept_id: Annotated[Optional[str], typer.Option(help="axbench: keep only this concept_id")] = None,
    output_concept: Annotated[
        Optional[str], typer.Option(help="axbench: keep only this output_concept (case-insensitive)")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="refuse rows with an empty cell or malformed options instead of skipping them")
    ] = False,
    test_source: Annotated[
        Optional[str], typer.Option(help="keep the source's own split: SOURCE trains, this file (same format) tests")
    ] = None,
) -> None:
    """Import a public pair dataset as a new concept folder (validated; nothing written on error)."""
    from steer_pu.suite.importers import import_concept
    from steer_pu.suite.manifest import MANIFEST_NAME

    result = import_concept(
        fmt.value, source, concept, suite, test_fraction, seed, license, concept_id, output_concept, strict, test_source
    )
    console.print(f"read {result.rows} row(s) ({result.layout} layout)", soft_wrap=True, markup=False, highlight=False)
    for note in result.notes:
        console.print(f"warning: {note}", soft_wrap=True, markup=False, highlight=False)
    console.print(
        f"wrote {display_path(result.path)}: {result.train} train / {result.test} test pairs",
        soft_wrap=True,
        markup=False,
    )  # one greppable line
    if result.warnings:
        console.print(f"{len(result.warnings)} quality warning(s) `steer-pu tasks validate` will report, e.g.:")
        for p in result.warnings[:5]:
            console.print(
                f"  {display_path(p.path)}{f':{p.line}' if p.line else ''}: {p.reason}",
                highlight=False, soft_wrap=True, markup=False,
            )  # fmt: skip
    _print_audit(result.path)
    if (result.path.parent / MANIFEST_NAME).is_file():
        console.print("release the changed suite with: steer-pu tasks manifest --bump minor", soft_wrap=True)


@tasks_app.command("report")
@user_errors
def tasks_report(
    model: Annotated[str, typer.Option(help="registry name, local HF directory or Hub id")] = DEFAULT_MODEL,
    out: Annotated[Optional[Path], typer.Option(help="write the Markdown report here (e.g. tasks/REPORT.md)")] = None,
    runs: Annotated[Path, typer.Option(help="run directory that caches the sweeps (re-runs resume)")] = Path(
        "runs/task-report"
    ),
    suite: Annotated[Optional[Path], typer.Option(help="suite folder")] = None,
    concepts: Annotated[Optional[str], typer.Option(help="comma-separated concept names (default: all)")] = None,
    strengths: Annotated[
        Optional[str],
        typer.Option(help="comma-separated strengths (default: the report grid, -4 … 4); 0 is always added"),
    ] = None,
    layer: Annotated[Optional[int], typer.Option(help="steering layer (default: the model's)")] = None,
    # One thread by default: the thread count is part of each cached run's config, so the
    # same command must resolve to the same value on every machine to resume.
    threads: Annotated[int, typer.Option(help="torch threads (part of the cached runs' config)")] = 1,
    # cpu by default for the same reason; another device or dtype caches in folders of its own
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "cpu",
    dtype: Annotated[str, typer.Option(help=DTYPE_HELP)] = "float32",
    before: Annotated[
        Optional[Path],
        typer.Option(help="an older suite folder: add a before/after table (its figures at m = 0 only)"),
    ] = None,
) -> None:
    """Per concept: counts, token lengths, p(0) and the best p of a DiffMean sweep at u ≥ 0.9."""

    from steer_pu.cli.common import literal, parse_floats, unit_progress, warn_if_emulated
    from steer_pu.io import atomic_write_text
    from steer_pu.models import load_model
    from steer_pu.paths import default_suite_dir
    from steer_pu.report.concept_report import build_report, render_markdown

    names = [c.strip() for c in concepts.split(",") if c.strip()] if concepts else None
    grid = parse_floats(strengths, "strengths") if strengths else None
    warn_if_emulated(device, dtype)
    with console.status(literal(f"loading {model}")):
        loaded = load_model(model, device, dtype)
    progress = unit_progress(36)
    with progress:
        task = progress.add_task("units", total=None)
        report = build_report(
            loaded, model, suite or default_suite_dir(), runs, names, grid, layer, threads,
            on_unit=lambda what, done, total: progress.update(task, description=what, completed=done, total=total),
        )  # fmt: skip
        older = None
        if before is not None:
            older = build_report(
                loaded, model, before, runs, names, [], layer, threads,
                on_unit=lambda what, done, total: progress.update(task, description=f"before: {what}",
                                                                  completed=done, total=total),
            )  # fmt: skip
    command = "steer-pu tasks report --model " + model + (f" --strengths {strengths}" if strengths else "")
    command += f" --before {display_path(before)}" if before is not None else ""
    text = render_markdown(report, command, older)
    if out is not None:
        atomic_write_text(out, text)
        console.print(f"wrote {display_path(out)}", markup=False)
    table = Table("concept", "format", "train/test", "tokens +/−", "p(0)", "best p (u≥0.9)", "m", "worst p", "flags")
    for r in report.rows:
        literal_row(
            table, r.name, r.format, f"{r.n_train}/{r.n_test}", f"{r.tokens_pos:.1f}/{r.tokens_neg:.1f}", f"{r.p0:.3f}",
            f"{r.best_p:.3f}", f"{r.best_m:+g}", f"{r.worst_p:.3f}", ", ".join(r.flags) or "-",
        )  # fmt: skip
    console.print(table)
