"""`cardamage review`: a review batch of the photos the endpoint was least sure of (pipelines/review.py), with
the model's boxes as pre-annotations for Label Studio and a Ground Truth adjustment manifest; pushed to a
Label Studio project, and its finished annotations pulled back under the labels prefix
(pipelines/labelstudio.py). The same code on AWS and here: the backend says where things are."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import typer

from containers.common.s3 import S3_URI_EXAMPLE, is_s3_uri, parse_s3_uri
from pipelines import review
from pipelines.backends import ReviewPlace
from pipelines.cli.app import Invocation, Side, command, fail
from pipelines.cli.options import option
from pipelines.local.runner import safe_name

TOKEN_VARIABLE = "LABEL_STUDIO_API_KEY"  # also the name label-studio-sdk reads
MIXED = f"{review.MIXED_ATYPICAL_SHARE:.0%} atypical, {review.MIXED_RANDOM_SHARE:.0%} random"
BATCH_FILES = ("tasks.json", "labeling-config.xml", "adjustment.manifest", "review.json", "contact-sheet.png")


@command(Side.BOTH, "review")
def review_command(
    cli: Invocation,
    output: option(str | None, "--output", "-o", metavar="OUT", help="The batch's folder or S3 URI (or a pulled export's copy).") = None,
    count: option(int, "--count", "-n", metavar="N", min=1, help="How many photos to pick.") = 20,
    strategy: option(str, "--strategy", metavar="STRATEGY", help=f"uncertain, random, atypical, mixed ({MIXED}).") = "uncertain",
    since: option(str | None, "--since", metavar="DATE", help="Only photos answered on or after DATE (ISO 8601).") = None,
    seed: option(int, "--seed", metavar="N", help="The random picks' seed.") = 0,
    push_labelstudio: option(str | None, "--push-labelstudio", metavar="URL", help="Then import the tasks into this Label Studio.") = None,
    pull_labelstudio: option(str | None, "--pull-labelstudio", metavar="URL", help="Instead: pull the project's annotations.") = None,
    token: option(
        str | None, "--token", metavar="TOKEN", help=f"Label Studio's access token; better in {TOKEN_VARIABLE}, or typed when asked."
    ) = None,
    project: option(str, "--project", metavar="NAME", help="The Label Studio project's title.") = "cardamage-review",
) -> None:
    """Pick the photos the endpoint was least sure of from its captured requests and answers (or, with --strategy
    atypical, the least like the photos the served package was trained on: its data baseline), leaving out what is
    already labelled (by content) and near-duplicates, and write a review batch: tasks.json (Label Studio tasks
    with the model's boxes as predictions), labeling-config.xml, adjustment.manifest (Ground Truth), review.json
    (why each photo was picked), images/ and contact-sheet.png. The photos also go under the images prefix
    executions read, in review/<batch>/, where the tasks point.

    With --push-labelstudio, the tasks go into a Label Studio project for a person to correct; with
    --pull-labelstudio, that project's annotations come back as a Label Studio JSON export under the labels
    prefix (labels/labelstudio-<project>-<hash>/), the next execution's input. The token is Label Studio's access
    token (Account & Settings), read from LABEL_STUDIO_API_KEY or asked for at the terminal; --token also works but
    leaves it in the shell's history and the process list. It goes over https, or plain http to this machine only."""
    if strategy not in review.STRATEGIES:
        fail(f"--strategy must be one of {', '.join(review.STRATEGIES)} (got {strategy!r})", 2)
    if push_labelstudio and pull_labelstudio:
        fail("--push-labelstudio sends a new batch, --pull-labelstudio brings annotations back: one at a time", 2)
    if push_labelstudio or pull_labelstudio:
        token = _token(push_labelstudio or pull_labelstudio, token)
    if not pull_labelstudio and output is None:
        fail("--output OUT is needed: the folder (or S3 URI) the review batch is written to", 2)
    if output is not None and output.startswith("s3://") and not is_s3_uri(output):
        fail(f"--output {output!r} is not an S3 URI (expected {S3_URI_EXAMPLE}, the bucket named as S3 allows) nor a folder", 2)
    since = _utc_since(since)
    place = cli.backend().review_place()
    if pull_labelstudio:
        _pull(place, pull_labelstudio, token, project, output)
        return
    baseline = _baseline(place, strategy)
    if output is not None and output.startswith("s3://"):
        with tempfile.TemporaryDirectory() as folder:
            _review(cli, place, Path(folder), output, count, (strategy, baseline), since, seed, push_labelstudio, token, project)
    else:
        _review(cli, place, Path(output or "."), None, count, (strategy, baseline), since, seed, push_labelstudio, token, project)


def _baseline(place: ReviewPlace, strategy: str) -> dict | None:
    """The served package's data baseline, when the strategy ranks photos by it: `atypical` cannot go without it
    (exit 2), `mixed` falls back to its uncertain and random shares and says so."""
    if strategy not in ("atypical", "mixed"):
        return None
    document, reason = review.data_baseline(place.s3, place.data_baseline)
    if document is None:
        why = place.no_baseline or reason
        if strategy == "atypical":
            fail(f"--strategy atypical ranks photos against the served package's data baseline, and there is none: {why}", 2)
        split = f"{1 - review.MIXED_RANDOM_SHARE:.0%} uncertain and {review.MIXED_RANDOM_SHARE:.0%} random"
        typer.echo(f"note: no data baseline ({why}): mixed picks {split}, none atypical", err=True)
    else:
        typer.echo(f"data baseline of {place.model_version}: {place.data_baseline} ({document['images']} photo(s))")
    return document


def _token(url: str, given: str | None) -> str:
    """The Label Studio token, once the URL may carry it: --token (with a warning), else LABEL_STUDIO_API_KEY,
    else typed at the terminal without echo; with none of these, a clear error."""
    from pipelines import labelstudio

    try:
        labelstudio.check_url(url)
    except labelstudio.LabelStudioError as exc:
        fail(str(exc), 2)
    if given:
        typer.echo(f"warning: a token given with --token lands in the shell's history and the process list; set {TOKEN_VARIABLE} instead", err=True)
        return given
    if from_environment := os.environ.get(TOKEN_VARIABLE):
        return from_environment
    if _interactive():
        return typer.prompt(f"Label Studio access token for {url}", hide_input=True)
    fail(f"Label Studio needs an access token: set {TOKEN_VARIABLE} (Account & Settings in Label Studio), or run at a terminal to type it", 2)


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _utc_since(since: str | None) -> str | None:
    if since is None:
        return None
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        fail(f"--since must be an ISO 8601 date or time such as 2026-11-30 or 2026-11-30T12:00:00Z (got {since!r})", 2)
    # Capture times are UTC, written as 2026-12-01T10:00:00Z: compared as text in that form.
    return (moment.astimezone(UTC) if moment.tzinfo else moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _review(
    cli: Invocation, place: ReviewPlace, folder: Path, upload: str | None, count: int, strategy: tuple[str, dict | None], since: str | None,
    seed: int, push_url: str | None, token: str | None, project: str,
) -> None:  # fmt: skip
    config = cli.config
    photos, unusable = review.captured_photos(review.read_captures(place.s3, place.captures), since=since)
    labelled = review.labelled_hashes(place.s3, place.artifact_bucket, config.pipeline_name)
    selection = review.select(photos, labelled, count, strategy[0], seed, baseline=strategy[1])
    selection.unusable[:0] = unusable
    batch = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    prefix = review.batch_images_prefix(place.images_prefix, batch)
    document = review.write_batch(folder, selection, prefix, list(config.data.classes or []), place.model_version, batch)
    uploaded = review.upload_images(place.s3, folder / "images", prefix)
    typer.echo(
        f"review batch {batch}: {len(document['images'])} photo(s) of {len(photos)} answered in {place.captures} "
        f"({', '.join(f'{n} {why}' for why, n in selection.skipped.items()) or 'none left out'}; {len(selection.unusable)} unusable)"
    )
    for entry in document["images"]:
        typer.echo(f"  {entry['score']:.2f}  {entry['image']}  {entry['reason']}")
    for where, reason in selection.unusable[:5]:
        typer.echo(f"  unusable: {where}: {reason}", err=True)
    if len(selection.unusable) > 5:
        typer.echo(f"  ... and {len(selection.unusable) - 5} more unusable capture line(s), listed in review.json", err=True)
    typer.echo(f"{uploaded} photo(s) put under {prefix}, where the tasks point")
    if upload is not None:
        base = parse_s3_uri(upload.rstrip("/") + "/")
        for name in BATCH_FILES:
            place.s3.put_object(Bucket=base.bucket, Key=base.key + name, Body=(folder / name).read_bytes())
        typer.echo(f"written to {base}: {', '.join(BATCH_FILES)} (the photos are under {prefix})")
    else:
        typer.echo(f"written to {folder}: {', '.join(BATCH_FILES)}, images/")
    if push_url:
        _push(push_url, token or "", project, folder, batch)


def _push(url: str, token: str, project: str, folder: Path, batch: str) -> None:
    from pipelines import labelstudio

    tasks = json.loads((folder / "tasks.json").read_text())
    if not tasks:
        typer.echo("nothing to push to Label Studio: the batch is empty")
        return
    with _reaching(url):
        pushed = labelstudio.push(
            labelstudio.connect(url, token), project, (folder / "labeling-config.xml").read_text(), tasks, f"cardamage review batches; latest {batch}"
        )
    typer.echo(
        f"Label Studio project {pushed.title!r} (id {pushed.project}, {'created' if pushed.created else 'updated'}): "
        f"{pushed.imported} task(s) imported with the model's boxes as predictions"
        + (f"; {len(pushed.already)} already in the project, not imported again" if pushed.already else "")
    )
    typer.echo(f"  label them at {url.rstrip('/')}/projects/{pushed.project}/data")


def _pull(place: ReviewPlace, url: str, token: str, project: str, output: str | None) -> None:
    from pipelines import labelstudio

    with _reaching(url):
        pulled = labelstudio.pull(labelstudio.connect(url, token), project)
    for problem in pulled.problems:
        typer.echo(f"warning: {problem}", err=True)
    if not pulled.tasks:
        typer.echo(f"Label Studio project {project!r} (id {pulled.project}) has no annotated task yet: nothing pulled")
        return
    body = json.dumps(pulled.tasks, indent=1).encode()
    name = f"labelstudio-{safe_name(project)}-{hashlib.sha256(body).hexdigest()[:12]}"
    bucket, prefix = parse_s3_uri(place.labels_prefix)
    key = f"{prefix}{name}/export.json"
    summary = (
        f"{len(pulled.tasks)} annotated task(s), {pulled.annotations} annotation(s)"
        + (f", {pulled.cancelled} skipped by the annotator (not used)" if pulled.cancelled else "")
        + (f", {len(pulled.problems)} problem(s) above (PrepareData reports what it cannot use)" if pulled.problems else "")
    )
    if review.object_exists(place.s3, bucket, key):
        typer.echo(f"s3://{bucket}/{key} holds this export already ({summary}): nothing new to pull")
    else:
        place.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        typer.echo(f"pulled {summary} from project {project!r} (id {pulled.project}) to s3://{bucket}/{key}")
        typer.echo(
            "  the next execution trains on it with all other labelled data (on AWS the new-data trigger starts it; here: cardamage run --local)"
        )
    if output is not None:
        target = Path(output) / "export.json" if Path(output).suffix != ".json" else Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        typer.echo(f"  saved a copy to {target}")


@contextmanager
def _reaching(url: str) -> Iterator[None]:
    """Label Studio's connection errors (httpx's, under the SDK) and refusals as one line and exit status 1."""
    import httpx

    from pipelines.labelstudio import LabelStudioError

    try:
        yield
    except httpx.HTTPError as exc:
        fail(f"cannot reach Label Studio at {url}: {exc}", 1)
    except LabelStudioError as exc:
        fail(str(exc), 1)
