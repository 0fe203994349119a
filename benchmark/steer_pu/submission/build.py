"""submission build: a Submission from a finished run, written beside its artifacts as one entry."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from pydantic import (
    ValidationError,
)

from steer_pu.errors import SteerPuError, first_field_error
from steer_pu.io import (
    FILE_MANIFEST,
    atomic_write_text,
    directory_lock,
    file_manifest,
    fsync_path,
    read_file_manifest,
    scratch_dir,
    sha256_file,
)
from steer_pu.submission.provenance import code_ref, environment_device, git_state, model_info, package_version
from steer_pu.submission.schema import (
    GENERATIONS_VERSION,
    MAX_COPIED_ARTIFACT_BYTES,
    MAX_SUBMISSION_BYTES,
    SCHEMA_VERSION,
    Artifact,
    ArtifactFile,
    ConceptResult,
    Environment,
    Generations,
    Libraries,
    MethodInfo,
    Seeds,
    StrengthResult,
    Submission,
    SuiteRef,
    SuiteScoreInfo,
    dump_submission,
    generations_sha256,
)

# --------------------------------------------------------------------------- building from a run


def sweep_results(scores) -> tuple[list[int], list[int], list[StrengthResult]]:
    """(len_pos, len_neg, one StrengthResult per strength) of a concept's sweep, as an entry records them."""
    from steer_pu.analysis.frontier import summarise

    rows = summarise(scores)
    base = scores[0.0]
    results = [
        StrengthResult(
            m=row["m"],
            nll_pos=scores[row["m"]].nll_pos.tolist(),
            nll_neg=scores[row["m"]].nll_neg.tolist(),
            pref_logodds=row["pref_logodds"],
            util_logodds=row["util_logodds"],
            p=row["p"],
            u=row["u"],
            n=row["n"],
        )
        for row in rows
    ]
    return base.len_pos.astype(int).tolist(), base.len_neg.astype(int).tolist(), results


def refuse_links(run_dir: Path, directory: Path) -> None:
    """A run's artifacts are real files and folders: a symlink at ``directory``, inside it, or on
    the way to it from ``run_dir`` is a SteerPuError (it is refused, never followed)."""
    node = Path(run_dir)
    for part in Path(directory).relative_to(run_dir).parts:
        node = node / part
        if node.is_symlink():
            raise SteerPuError(f"{node}: is a symlink; a run's artifacts must be real files (links are not followed)")
    if not node.is_dir():
        return
    for root, dirs, files in os.walk(node):  # does not descend into linked folders
        for name in sorted(dirs + files):
            if (Path(root) / name).is_symlink():
                raise SteerPuError(
                    f"{Path(root) / name}: is a symlink; a run's artifacts must be real files (links are not followed)"
                )


def check_submission_path(out: Path) -> None:
    """``out`` can name a submission file: not a directory, and ending in .json."""
    out = Path(out)
    if out.is_dir():
        raise SteerPuError(f"{out}: is a directory; -o names the submission file, e.g. submissions/MODEL/NAME.json")
    if out.suffix != ".json":
        raise SteerPuError(f"{out}: a submission file name ends in .json, e.g. submissions/MODEL/NAME.json")


def _artifact_files(directory: Path) -> list[ArtifactFile]:
    """The artifact's files, hashed; a file its manifest records but the folder lacks (a large
    delta left out of a checkout) is named by the recorded hash and size."""
    files = file_manifest(directory)
    for name, record in (read_file_manifest(directory) or {}).items():
        if name not in files:
            if record["bytes"] <= MAX_COPIED_ARTIFACT_BYTES:  # small files are copied: they must be there
                raise SteerPuError(f"{directory / name}: missing (recorded in {FILE_MANIFEST}); run the run again")
            files[name] = record
    return [ArtifactFile(name=name, **files[name]) for name in sorted(files)]


def generations_section(
    run_dir: Path, concept: str, method_form: str, test_ids: list[str], config
) -> Generations | None:
    """The run's generations of one concept as a submission section (None when the run made none)."""
    from steer_pu.runs.generations import generations_path, read_generations
    from steer_pu.suite.generation_prompts import generation_prompt_ids

    path = generations_path(run_dir, concept, method_form)
    if not path.is_file():
        if config.generate:
            raise SteerPuError(
                f"{path}: missing, but the run was started with --generate {config.generate}; "
                "finish the run first (run the same command again)"
            )
        return None
    record = read_generations(path)
    try:
        strengths = [
            (float(s["m"]), [x["token_ids"] for x in s["samples"]], [x["text"] for x in s["samples"]])
            for s in record["strengths"]
        ]
        section = Generations.model_validate(
            {
                "version": GENERATIONS_VERSION,
                "max_new_tokens": record.get("max_new_tokens"),
                "pair_ids": record.get("pair_ids"),
                "strengths": record["strengths"],
                "sha256": generations_sha256(record.get("pair_ids"), strengths),
            }
        )
    except (KeyError, TypeError) as exc:
        raise SteerPuError(f"{path}: malformed generations ({exc!r})") from None
    except ValidationError as exc:
        raise SteerPuError(f"{path}: {first_field_error(exc)}") from None
    if [s.m for s in section.strengths] != list(config.strengths):
        raise SteerPuError(f"{path}: field 'strengths': not the run's grid; finish the run first")
    if section.pair_ids != generation_prompt_ids(test_ids, len(section.pair_ids), config.seed):
        raise SteerPuError(f"{path}: field 'pair_ids': not the seeded choice of test prompts for seed {config.seed}")
    return section


def build_submission(
    run_dir: Path, name: str, artifact_prefix: str | None, n_boot: int = 1000, bootstrap_seed: int = 0
):
    """A :class:`Submission` from a finished run directory, and the artifact folders to copy.

    ``artifact_prefix`` is the folder (relative to the submission file) that small artifacts
    are copied to; artifacts whose files are all at most ``MAX_COPIED_ARTIFACT_BYTES`` get a
    ``path`` there, larger ones are recorded by hash only (verify them with ``--retrain``).
    Returns (submission, {relative path: source folder}).
    """
    from steer_pu.analysis.frontier import concept_scores, suite_score
    from steer_pu.models import load_model
    from steer_pu.runs.run import RUN_FILE, load_scores, read_run_file, read_score_file, score_files
    from steer_pu.suite.concepts import concept_dirs, concept_sha256, load_concepts
    from steer_pu.suite.manifest import suite_info

    run_dir = Path(run_dir)
    run_file = run_dir / RUN_FILE
    record = read_run_file(run_dir)
    config, provenance = record.config, record.provenance
    try:
        suite_dir = Path(config.suite_dir)
        all_concepts = [p.name for p in concept_dirs(suite_dir)]
    except SteerPuError as exc:
        raise SteerPuError(f"{run_file}: field 'config.suite_dir': {exc}") from None
    missing = sorted(set(all_concepts) - set(config.concepts))
    if missing:
        raise SteerPuError(
            f"{run_file}: field 'config.concepts': a submission covers the whole suite; "
            f"the run lacks {', '.join(missing)}"
        )
    concepts = load_concepts(suite_dir, sorted(config.concepts))
    for concept in concepts:
        if record.concept_sha256.get(concept.name) != concept_sha256(concept.path):
            raise SteerPuError(
                f"{run_file}: field 'provenance.concepts.{concept.name}.sha256': the run used other task files "
                "than the suite has now; re-run on the current suite"
            )
    loaded = load_model(config.model)
    if loaded.weights_sha256 != provenance.get("model_weights_sha256"):
        raise SteerPuError(
            f"{run_file}: field 'provenance.model_weights_sha256': "
            f"the run used other weights than {config.model} has now"
        )
    method_form = f"{config.method}-{config.form}"
    results: dict[str, ConceptResult] = {}
    sweeps = {}
    copies: dict[str, Path] = {}
    for concept in concepts:
        scores = load_scores(run_dir, concept.name, method_form)
        if sorted(scores) != list(config.strengths):
            have = ", ".join(f"{m:g}" for m in sorted(scores)) or "none"
            raise SteerPuError(
                f"{run_dir / 'scores' / concept.name / method_form}: strengths scored ({have}) differ from the run's "
                "grid; finish the run first (run the same command again)"
            )
        ids = [pair.id for pair in concept.test]
        for path in score_files(run_dir / "scores" / concept.name / method_form):
            data = read_score_file(path)[2]
            if "ids" not in data:
                raise SteerPuError(f"{path}: field 'ids' missing")
            if data["ids"] != ids:
                raise SteerPuError(f"{path}: field 'ids' differs from the test split of {concept.name}")
        sweeps[concept.name] = scores
        len_pos, len_neg, strengths = sweep_results(scores)
        cs = concept_scores(scores)
        artifact = None
        art_dir = run_dir / "artifacts" / concept.name / method_form
        refuse_links(run_dir, art_dir)
        if art_dir.is_dir():
            files = _artifact_files(art_dir)
            small = files and all(f.bytes <= MAX_COPIED_ARTIFACT_BYTES for f in files)
            rel = f"{artifact_prefix}/{concept.name}" if small and artifact_prefix else None
            if rel:
                copies[rel] = art_dir
            artifact = Artifact(path=rel, files=files) if files else None
        results[concept.name] = ConceptResult(
            pair_ids=ids, len_pos=len_pos, len_neg=len_neg, strengths=strengths, base_p=cs.base_p,
            fa=cs.fa, fa_gain=cs.fa_gain, fa_negative=cs.fa_negative, artifact=artifact,
            generations=generations_section(run_dir, concept.name, method_form, ids, config),
        )  # fmt: skip
    score = suite_score(sweeps, n_boot=n_boot, seed=bootstrap_seed)
    info = suite_info(suite_dir)
    commit, dirty = git_state()
    libs = provenance.get("libraries", {})
    try:
        sub = Submission(
            schema_version=SCHEMA_VERSION,
            name=name,
            created_at=datetime.now(timezone.utc).replace(microsecond=0),
            method=MethodInfo(
                name=config.method,
                form=config.form,
                layer=config.layer,
                hyperparams=config.hyperparams,
                strengths=list(config.strengths),
                code=code_ref(config.method),
            ),  # fmt: skip
            model=model_info(loaded),
            suite=SuiteRef(
                name=suite_dir.resolve().name, version=info.version, sha256=info.sha256, concepts=info.concepts
            ),
            environment=Environment(
                harness_version=provenance.get("harness_version", "unknown"),
                git_commit=commit,
                git_dirty=dirty,
                python=provenance.get("python", "unknown"),
                libraries=Libraries(
                    torch=libs.get("torch", "unknown"),
                    transformers=libs.get("transformers", "unknown"),
                    peft=libs.get("peft") or package_version("peft"),
                ),
                device=environment_device(provenance),
                dtype=provenance.get("dtype", "unknown"),
                threads=config.threads,
                token_budget=config.token_budget,
            ),
            seeds=Seeds(method=config.seed, bootstrap=bootstrap_seed),
            concepts=results,
            suite_score=SuiteScoreInfo(
                mean_fa=score.mean_fa, ci_low=score.ci_low, ci_high=score.ci_high, ci=score.ci, n_boot=score.n_boot
            ),
        )
    except ValidationError as exc:
        raise SteerPuError(f"{run_dir}: cannot make a submission: {first_field_error(exc)}") from None
    return sub, copies


# an earlier version of submit staged the whole entry beside it, in .NAME.json.submit-XXXXXXXX
_STAGING_RE = re.compile(r"^\.(?P<file>.+\.json)\.submit-[a-z0-9_]+$")
_FOLDER_MARK = "has-folder"  # in such a staging folder: the new entry had an artifact folder
STAGE = ".stage-"  # inside the entry's folder: a copy of the artifacts being made, NAME/.stage-XXXXXXXX
_COPY_RE = re.compile(r"^[0-9a-f]{12}(?:[0-9a-f]{52})?$")  # a copy of an entry's artifacts, named by their sha256


def _tree_sha256(folder: Path) -> str:
    """sha256 over the relative path and sha256 of every file below ``folder``, sorted by path."""
    digest = hashlib.sha256()
    found = []
    for root, _, files in os.walk(folder):
        found += [Path(root) / name for name in files]
    for path in sorted(found, key=lambda p: p.relative_to(folder).as_posix()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def _referenced(out: Path) -> set[str] | None:
    """The names in the entry's folder (``out.parent / out.stem``) that the JSON ``out`` references
    in an ``artifact.path``: empty when there is no JSON, None when it cannot be read (unknown)."""
    if not out.exists() and not out.is_symlink():
        return set()
    try:
        if out.is_symlink() or out.stat().st_size > MAX_SUBMISSION_BYTES:
            return None
        concepts = json.loads(out.read_bytes())["concepts"]
        paths = [(result.get("artifact") or {}).get("path") for result in concepts.values()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    names = set()
    for path in paths:
        if path is None:
            continue
        if not isinstance(path, str):
            return None
        parts = path.split("/")
        if parts[0] == out.stem:
            if len(parts) < 2 or parts[1] in ("", "."):
                return None  # the whole folder
            names.add(parts[1])
    return names


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def clean_folder(out: Path) -> None:
    """Delete what the entry's folder ``out.parent / out.stem`` holds that its JSON does not reference:
    with a JSON, every name it does not reference (the old entry's copy after a resubmit, an old-layout
    ``NAME/<concept>/`` folder); without one (a killed first submit), only copies and stagings that
    submits make; in a JSON that cannot be read, only stagings. The folder goes when it is empty."""
    folder = out.parent / out.stem
    if folder.is_symlink() or not folder.is_dir():
        return
    names, entry = _referenced(out), out.exists() or out.is_symlink()
    for path in sorted(folder.iterdir()):
        staging = path.name.startswith(STAGE)
        if names is None:
            unused = staging
        else:
            unused = path.name not in names and (entry or staging or bool(_COPY_RE.match(path.name)))
        if unused:
            _remove(path)
    if not any(folder.iterdir()):
        folder.rmdir()


def _copy_artifacts(sub: Submission, out: Path, copies: dict[str, Path]) -> Submission:
    """Copy the artifacts into ``NAME/<sha256[:12]>/<concept>/`` (staged, fsynced, then renamed in
    whole) and return ``sub`` with its artifact paths pointing there. A copy of the same artifacts
    already there (the old entry's) is kept as it is."""
    folder = out.parent / out.stem
    folder.mkdir(exist_ok=True)
    fsync_path(out.parent)
    staging = scratch_dir(folder, STAGE)
    try:
        for rel, source in copies.items():
            shutil.copytree(source, staging / rel.split("/", 1)[1], ignore=shutil.ignore_patterns(".*"))
        for root, _, files in os.walk(staging):
            for name in files:
                fsync_path(Path(root) / name)
            fsync_path(Path(root))
        digest = _tree_sha256(staging)
        for target in (folder / digest[:12], folder / digest):
            if not target.exists() and not target.is_symlink():
                os.rename(staging, target)
                break
            if target.is_dir() and not target.is_symlink() and _tree_sha256(target) == digest:
                shutil.rmtree(staging)  # the same artifacts, already in place
                break
        else:
            raise SteerPuError(f"{folder / digest[:12]}: holds other files than its name says; move it away first")
        fsync_path(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not any(folder.iterdir()):
            folder.rmdir()
        raise
    concepts = {}
    for concept, result in sub.concepts.items():
        art = result.artifact
        if art is not None and art.path in copies:
            path = f"{out.stem}/{target.name}/{art.path.split('/', 1)[1]}"
            result = result.model_copy(update={"artifact": art.model_copy(update={"path": path})})
        concepts[concept] = result
    return sub.model_copy(update={"concepts": concepts})


def write_submission(sub: Submission, out: Path, copies: dict[str, Path], force: bool = False) -> Submission:
    """Write the entry ``out`` with its artifacts in ``out.parent / out.stem``, all or nothing;
    return the submission as written (its artifact paths name the copy).

    The artifacts are copied whole into a new folder ``NAME/<sha256[:12]>/<concept>/``, named by
    their content, which no JSON references yet; then the new JSON replaces the old one in one
    ``os.replace``, the commit point; then whatever in ``NAME/`` the new JSON does not reference
    (the old entry's copy, or an old-layout ``NAME/<concept>/``) is deleted. A kill leaves the old
    entry whole (before the commit point) or the new one (after it), plus at most an unreferenced
    folder, which the next submit into that folder deletes (with what older versions of this
    function left: their staging folders are put back first). Writers of one folder hold a lock on it.
    """
    out = Path(out)
    check_submission_path(out)
    prefixes = {rel.split("/")[0] for rel in copies}
    if len(prefixes) > 1:
        raise SteerPuError(f"artifact paths must share one folder, got {sorted(prefixes)}")
    if prefixes and prefixes != {out.stem}:
        raise SteerPuError(f"artifact folder {prefixes.pop()!r} must be named after the file ({out.stem!r})")
    for source in copies.values():
        refuse_links(source.parent, source)
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = out.parent / out.stem
    with directory_lock(out.parent, f"{out.parent}: another steer-pu submit is writing this folder; try again"):
        clean_stale(out)
        for path in (out, folder):
            if (path.exists() or path.is_symlink()) and not force:
                raise SteerPuError(f"{path}: already exists; pass --force to replace it")
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise SteerPuError(f"{folder}: exists and is not a folder; move it away first")
        if copies:
            sub = _copy_artifacts(sub, out, copies)
        atomic_write_text(out, dump_submission(sub))  # the commit point: one os.replace
        fsync_path(out.parent)
        clean_folder(out)
    return sub


def _recover(staging: Path, parent: Path) -> None:
    """Finish with a staging folder of an earlier version's submit no longer running: before its commit point,
    put the old entry back where the new one was going; after it, just delete the folder."""
    match = _STAGING_RE.match(staging.name)
    if match is not None and (staging / "new.json").exists():  # never committed
        out = parent / match["file"]
        folder = out.with_suffix("")
        if (staging / _FOLDER_MARK).exists() and not (staging / "new").exists():
            shutil.rmtree(folder)  # the new folder was moved in, its JSON never was
        if (staging / "old").exists():
            os.rename(staging / "old", folder)
        if (staging / "old.json").exists():
            os.rename(staging / "old.json", out)
        fsync_path(parent)
    shutil.rmtree(staging)


def clean_stale(out: Path) -> None:
    """Delete what killed submits left: in this entry's folder what its JSON does not reference
    (:func:`clean_folder`), a half-written JSON, and from earlier versions the staging folders of any
    entry beside ``out`` (recovered first) and this entry's scratch files (call it holding the lock)."""
    parent, stem = out.parent, out.stem
    legacy_scratch = re.compile(rf"^\.{re.escape(stem)}-[a-z0-9_]{{8}}$")  # before 2.1: its scratch folder,
    legacy_old = f".{stem}.old"  # the old artifact folder it moved aside,
    temp_file = re.compile(rf"^\.{re.escape(out.name)}\.[a-z0-9_]{{8}}\.tmp$")  # a killed atomic write of the JSON
    for path in sorted(parent.iterdir()):
        if path.is_symlink():
            continue
        if _STAGING_RE.match(path.name) and path.is_dir():
            _recover(path, parent)
        elif temp_file.match(path.name) and path.is_file():
            path.unlink()
        elif legacy_scratch.match(path.name) and path.is_dir():
            shutil.rmtree(path)
        elif path.name == legacy_old and path.is_dir():
            if (parent / stem).exists():
                shutil.rmtree(path)
            else:  # killed mid-swap: the old folder goes back beside its JSON
                os.rename(path, parent / stem)
    clean_folder(out)
