"""steer-pu leaderboard: methods ranked by frontier area, their frontiers, and where SPLIT lands.

Run with ``steer-pu leaderboard`` (or ``streamlit run leaderboard/app.py`` in a checkout). The
data folder is ``$STEER_PU_SUBMISSIONS`` (default: :func:`steer_pu.paths.default_submissions_dir`),
the suite the entries are checked against ``$STEER_PU_SUITE`` (default: the shipped suite). All
data shaping lives in :mod:`steer_pu.leaderboard.data`; this file only lays out the page.

The ranking is drawn first, from the files' own numbers; entries whose offline checks are not
cached yet (:mod:`steer_pu.leaderboard.checks`) read "… checking" while a background thread checks
them, and the page reruns once they are done. Generated text in the drill-down is untrusted input:
it is written with ``st.text`` only, never as Markdown or HTML.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from steer_pu.io import display_path
from steer_pu.leaderboard import checks
from steer_pu.leaderboard import data as lb
from steer_pu.models import DEFAULT_MODEL
from steer_pu.paths import default_submissions_dir, default_suite_dir

if TYPE_CHECKING:  # altair is imported where a chart is drawn: ~0.2 s that the ranking table need not wait for
    import altair as alt

SPLIT_COLOUR = "#fff3c4"
OLDER_COLOUR = "#777777"  # rows scored on an older suite release
DEFAULT_PLOTTED = 10  # with many entries the plot starts with the top ten (+ every SPLIT entry)
POLL_S = 1.0  # how often the page looks whether the background checks are done


@st.cache_data(show_spinner=False, max_entries=2000)
def _read_one(path: str, mtime_ns: int, size: int, root: str) -> lb.Parsed | lb.Rejected:
    # keyed on (mtime, size): an edited file is re-read, the others come from memory; the checks
    # are keyed on the bytes' sha256 instead (checks.check_key), never on the mtime
    del mtime_ns, size
    item = lb.read_entry(Path(path), Path(root))
    return lb.light(item) if isinstance(item, lb.Parsed) else item


@st.cache_resource(show_spinner=False)
def _checker(suite: str, cache: str) -> checks.Checker:
    # one per server process and suite: every session shares the background checks and their outcomes
    return checks.Checker(Path(suite), checks.CheckCache(Path(cache)))


def load(root: Path, checker: checks.Checker) -> tuple[lb.Board, list[checks.Job]]:
    """The board from the files and the checks done so far, and the files still to check."""
    if not root.is_dir():
        return lb.Board((), (), note=f"submissions folder {root} does not exist"), []
    entries, rejected, jobs = [], [], []
    suite = checks.suite_sha256(checker.suite_dir)
    for path in lb.submission_files(root):
        try:
            stat = path.stat()
        except OSError as exc:  # vanished or unreadable between listing and reading
            rejected.append(lb.Rejected(str(path), f"cannot read: {exc}"))
            continue
        item = _read_one(str(path), stat.st_mtime_ns, stat.st_size, str(root))
        if isinstance(item, lb.Rejected):
            rejected.append(item)
            continue
        key = checks.check_key(item.sha256, checks.artifact_stamps(item.path, item.sub), suite)
        result = checker.result(key)
        if result is None:
            jobs.append(checks.Job(key, path, root))
        entries.append(lb.make_entry(item, result))
    return lb.Board(tuple(entries), tuple(rejected)), jobs


def _styled(df: pd.DataFrame) -> pd.io.formats.style.Styler:
    """The ranking with SPLIT rows shaded, rows on an older suite release in grey italics; numbers to three
    decimals, missing as '–'."""
    split, older = df["split"].tolist(), df["older"].tolist()
    shown = df.drop(columns=["split", "older"])
    styler = shown.style.format({"suite FA": "{:.3f}", "FA gain": "{:+.3f}", "FA−": "{:.3f}"}, na_rep="–")
    styler = styler.apply(
        lambda row: [f"background-color: {SPLIT_COLOUR}; font-weight: 600" if split[row.name] else ""] * len(row),
        axis=1,
    )
    styler = styler.apply(
        lambda row: [f"color: {OLDER_COLOUR}; font-style: italic" if older[row.name] else ""] * len(row), axis=1
    )
    return styler.hide(axis="index")


def frontier_chart(entries: list[lb.Entry], concept: str | None) -> alt.LayerChart:
    import altair as alt

    points, steps = lb.frontier_frame(entries, concept)
    width = alt.condition(alt.datum.split, alt.value(3.5), alt.value(1.2))
    colour = alt.Color("entry:N", title="entry")
    x = alt.X("u:Q", title="utility retention u", scale=alt.Scale(domain=[0, 1]))
    y = alt.Y("p:Q", title="preference score p", scale=alt.Scale(zero=False))
    lines = (
        alt.Chart(steps)
        .mark_line(interpolate="linear")
        .encode(x=x, y=y, color=colour, order="order:Q", strokeWidth=width)
    )
    dots = alt.Chart(points).mark_point(size=45, filled=True).encode(
        x=x, y=y, stroke=alt.Stroke("entry:N", legend=None),
        fill=alt.condition(alt.datum["m<0"], alt.value("white"), alt.Fill("entry:N", legend=None)),
        tooltip=["entry", "m", alt.Tooltip("u:Q", format=".3f"), alt.Tooltip("p:Q", format=".3f")],
    )  # fmt: skip
    base = pd.DataFrame(
        [
            {"u": 1.0, "p": p, "label": "unsteered"}
            for p in sorted({round(v, 6) for v in points.loc[points.m == 0, "p"]})
        ]
    )
    star = (
        alt.Chart(base)
        .mark_point(shape="diamond", size=220, filled=True, color="black")
        .encode(x=x, y=y, tooltip=["label", alt.Tooltip("p:Q", format=".3f")])
    )
    label = alt.Chart(base).mark_text(align="right", dx=-10, dy=-10).encode(x=x, y=y, text="label")
    return alt.layer(lines, dots, star, label).properties(height=420)


def curve_chart(fits: lb.CurveFits, which: str) -> alt.LayerChart:
    import altair as alt

    ys, fitted = (fits.pref, fits.pref_fit) if which == "PrefOdds" else (fits.util, fits.util_fit)
    measured = (
        alt.Chart(pd.DataFrame({"m": fits.m, which: ys}))
        .mark_point(filled=True, size=50)
        .encode(
            x=alt.X("m:Q", title="strength m"),
            y=alt.Y(f"{which}:Q", title=f"mean {which}", scale=alt.Scale(zero=False)),
        )
    )
    if fitted is None:
        return alt.layer(measured).properties(height=260)
    line = (
        alt.Chart(pd.DataFrame({"m": fits.grid, which: fitted}))
        .mark_line(color="firebrick")
        .encode(x="m:Q", y=f"{which}:Q")
    )
    return alt.layer(measured, line).properties(height=260)


def _r2_text(name: str, r2: float | None, note: str) -> str:
    if note:
        return f"{name}: no fit — {note}"
    return f"{name}: R² = {r2:.3f}" if r2 is not None else f"{name}: R² undefined (constant values)"


def page() -> None:
    st.set_page_config(page_title="steer-pu leaderboard", layout="wide")
    root = default_submissions_dir()
    suite = Path(os.environ.get(lb.ENV_SUITE) or default_suite_dir())
    checker = _checker(str(suite), str(checks.cache_dir()))
    board, jobs = load(root, checker)

    st.title("steer-pu leaderboard")
    st.caption(
        "Control methods ranked by **frontier area** (FA): the area under the best preference score p reachable at "
        f"each level of utility retention u, averaged over the suite's concepts. Data: `{display_path(root)}`."
    )
    models = board.models()
    model = None
    if models:
        default = models.index(DEFAULT_MODEL) if DEFAULT_MODEL in models else 0
        model = st.sidebar.selectbox("Model", models, index=default, key="model")
    entries = board.for_model(model) if model else []

    if board.note:
        st.warning(board.note)
    if not entries:
        st.info(
            f"No valid submissions{f' for {model}' if model else ''} under {display_path(root)}. "
            "How to add one: CONTRIBUTING.md."
        )
        _start_checks(checker, jobs)  # the other models' files
    else:
        table = _ranking(entries, model)
        _start_checks(checker, jobs)  # after the table is drawn: the first checks import torch (seconds)
        _main(entries, table, checker)
    _rejected(board)


def _start_checks(checker: checks.Checker, jobs: list[checks.Job]) -> None:
    if not jobs:
        return
    checker.submit(jobs)
    _progress(
        checker,
        tuple(job.key for job in jobs),
        "offline checks of {left} of {total} file(s) are running in the background (numbers recomputed, suite "
        "and artifact hashes); the table updates when they finish.",
    )


@st.fragment(run_every=POLL_S)
def _progress(checker: checks.Checker, keys: tuple[str, ...], what: str) -> None:
    """A line saying how much background work is left, rerun every POLL_S; the whole page reruns when none is."""
    left = checker.pending(keys)
    if not left:
        st.rerun()
    st.caption(f"{lb.CHECKING}: " + what.format(left=left, total=len(keys)))


def _ranking(entries: list[lb.Entry], model: str) -> pd.DataFrame:
    table = lb.ranking(entries)
    st.header(f"Ranking on {model}")
    st.table(_styled(table))
    return table


def _main(entries: list[lb.Entry], table: pd.DataFrame, checker: checks.Checker) -> None:
    st.caption(
        f"{lb.SPLIT_MARK} marks the paper's method (shaded rows). Rank = 1 + the number of entries whose 95 % CI "
        "lies wholly above; **=k** marks entries whose CIs overlap, i.e. tied. FA gain = FA − p(0); FA− = frontier "
        "area toward the negative pole (m < 0; – when not swept). *verified*: numbers recomputed from the per-pair "
        "NLLs, suite and artifact hashes checked; re-scoring the artifacts is `steer-pu verify FILE` (and CI). "
        "*older suite x.y.z* (grey italics): scored on an earlier release of the task suite; its own numbers and "
        "artifacts are checked, but its pairs are not those of the current suite, so compare it with care."
    )

    st.header("Preference–utility frontiers")
    by_label = {e.label: e for e in entries}
    order = table["entry"].tolist()
    default = (
        order
        if len(order) <= 12
        else order[:DEFAULT_PLOTTED] + [n for n in order[DEFAULT_PLOTTED:] if by_label[n].is_split]
    )
    chosen = st.multiselect("Entries in the plot", order, default=default, key="plot_entries")
    concepts = sorted(entries[0].sub.concepts)
    concept = st.selectbox("Concept", [lb.MEAN_VIEW, *concepts], key="plot_concept")
    if chosen:
        st.altair_chart(
            frontier_chart([by_label[n] for n in chosen], None if concept == lb.MEAN_VIEW else concept), width="stretch"
        )
        st.caption(
            "Staircase = the frontier whose area is the FA (for one concept; the all-concepts view plots per-strength "
            "means, whose area is not the suite FA). Thick lines: SPLIT. Hollow markers: m < 0. Diamond: the "
            "unsteered model."
        )
    else:
        st.info("Select at least one entry to plot.")

    st.header("Method drill-down")
    pick = st.selectbox("Entry", order, key="drill_entry")
    entry = by_label[pick]
    sub = entry.sub
    st.markdown(
        f"**{sub.method.name}** ({lb.FORM_LABELS.get(sub.method.form, sub.method.form)}, layer {sub.method.layer}) · "
        f"strengths {', '.join(f'{m:g}' for m in sub.method.strengths)} · file `{entry.file}`"
    )
    if entry.checking:
        st.info("Offline checks still running for this entry.")
    elif not entry.verified:
        st.error(f"Offline checks failed: {entry.verify_note}")
    if entry.older_suite:
        st.warning(entry.suite_note[:1].upper() + entry.suite_note[1:])
    st.dataframe(lb.concept_table(entry), hide_index=True, width="stretch")
    drill_concept = st.selectbox("Concept (curves and generations)", sorted(sub.concepts), key="drill_concept")
    _curves(entry, drill_concept, checker)
    _generations(entry, drill_concept)

    st.header("Per-concept winners")
    wins = lb.winners(entries)
    st.dataframe(wins, hide_index=True, width="stretch")
    counts = wins["winner"].value_counts()
    st.caption("Concepts won: " + ", ".join(f"{name} {n}" for name, n in counts.items()))


def _curves(entry: lb.Entry, concept: str, checker: checks.Checker) -> None:
    """The paper's fitted curves; the SLSQP fits (seconds) run in the background and are cached on disk."""
    key = checks.fit_key(entry.sha256, concept)
    fits = checker.fits(key)
    if fits is None:
        checker.submit([checks.FitJob(key, entry, concept)])
        _progress(checker, (key,), "fitting the paper's PrefOdds and UtilOdds curves to this concept.")
        return
    left, right = st.columns(2)
    left.altair_chart(curve_chart(fits, "PrefOdds"), width="stretch")
    left.caption(_r2_text("PrefOdds ≈ (α·m + β)·D(m) + b", fits.pref_r2, fits.pref_note))
    right.altair_chart(curve_chart(fits, "UtilOdds"), width="stretch")
    right.caption(_r2_text("UtilOdds ≈ β·D(m) + b", fits.util_r2, fits.util_note))


def _generations(entry: lb.Entry, concept: str) -> None:
    """Greedy continuations unsteered beside one strength, with their judge-free statistics.

    The text comes from the submission file: untrusted, so st.text (no Markdown, no HTML) only."""
    st.subheader("Generations")
    if entry.sub.concepts[concept].generations is None:
        st.info(lb.NO_GENERATIONS)
        return
    strengths, best = lb.generation_strengths(entry, concept)
    m = st.selectbox(
        "Strength m",
        strengths,
        index=strengths.index(best),
        format_func=lambda v: f"m = {v:g}" + (f" (best p at u ≥ {lb.GENERATION_MIN_U:g})" if v == best else ""),
        key=f"gen_m/{entry.file}/{concept}",  # per entry and concept: each opens at its own best strength
    )
    st.dataframe(
        lb.generation_means(entry, concept).style.format(precision=3, na_rep="–"), hide_index=True, width="stretch"
    )
    st.caption(
        "Per strength: p and u of the sweep, and the mean statistics of its continuations: fluency NLL (the "
        "unsteered model's mean per-token NLL of the text; higher = less fluent), repetition (share of repeated "
        "word 3-grams), distinct-2, keyword hits (share of texts naming one of the concept's keywords)."
    )
    head_left, head_right = st.columns(2)
    head_left.subheader("unsteered (m = 0)")
    head_right.subheader(f"m = {m:g}")
    for pair in lb.generation_pairs(entry, concept, m):
        st.text(f"prompt of test pair {pair.pair_id}")
        left, right = st.columns(2)
        for column, sample in ((left, pair.base), (right, pair.steered)):
            with column.container(border=True):
                st.text(sample.text)
                st.caption(lb.sample_stats(sample))


def _rejected(board: lb.Board) -> None:
    st.header(f"Rejected entries ({len(board.rejected)})")
    if board.rejected:
        st.table(pd.DataFrame([{"file": r.file, "reason": r.reason} for r in board.rejected]).style.hide(axis="index"))
    else:
        st.caption("Every submission file passed validation.")


if __name__ == "__main__":  # streamlit runs this file as __main__
    page()
