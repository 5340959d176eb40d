"""`cardamage review`: a review batch of the photos the endpoint was least sure of (pipelines/review.py), with
the model's boxes as pre-annotations for Label Studio and a Ground Truth adjustment manifest.

Here it reads the local endpoint's data capture and the local executions' prepared data (what is already
labelled); the AWS side (capture in S3, the batch under the data bucket's images/review/) and pushing to a
Label Studio server come next (issue 13)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from pipelines import review
from pipelines.backends.local import LocalBackend
from pipelines.cli.app import Invocation, Side, command, fail
from pipelines.local.capture import read_captures
from pipelines.local.runner import LOCAL_VALUES
from steps.prepare_data import OUTPUT as PREPARED_OUTPUT


@command(Side.LOCAL, "review")
def review_command(
    cli: Invocation,
    output: Annotated[Path, typer.Option("--output", "-o", metavar="OUT", help="The review batch's folder.")],
    count: Annotated[int, typer.Option("--count", "-n", metavar="N", min=1, help="How many photos to pick.")] = 20,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy", metavar="STRATEGY", help=f"uncertain (the least sure first), random, or mixed ({review.MIXED_RANDOM_SHARE:.0%} at random)."
        ),
    ] = "uncertain",
    since: Annotated[str | None, typer.Option("--since", metavar="DATE", help="Only photos answered on or after DATE (ISO 8601).")] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="The random picks' seed.")] = 0,
) -> None:
    """Pick the photos the endpoint was least sure of from its captured requests and answers, leaving out what is
    already labelled (by content) and near-duplicates, and write a review batch: tasks.json (Label Studio tasks
    with the model's boxes as predictions), labeling-config.xml, adjustment.manifest (Ground Truth), review.json
    (why each photo was picked), images/ and contact-sheet.png."""
    if strategy not in review.STRATEGIES:
        fail(f"--strategy must be one of {', '.join(review.STRATEGIES)} (got {strategy!r})", 2)
    if since is not None:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            fail(f"--since must be an ISO 8601 date or time such as 2026-11-30 or 2026-11-30T12:00:00Z (got {since!r})", 2)
        # Capture times are UTC, written as 2026-12-01T10:00:00Z: compared as text in that form.
        since = (moment.astimezone(UTC) if moment.tzinfo else moment).strftime("%Y-%m-%dT%H:%M:%SZ")
    backend = LocalBackend(cli.config, cli.state_dir)
    config = cli.config
    destination = str(config.data_capture(LOCAL_VALUES["ArtifactBucket"]))
    records = read_captures(backend.deployer.s3, destination)
    photos, unusable = review.captured_photos(records, since=since)
    labelled = labelled_hashes(backend)
    selection = review.select(photos, labelled, count, strategy, seed)
    selection.unusable[:0] = unusable
    batch = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    prefix = f"s3://{LOCAL_VALUES['DataBucket']}/images/review/{batch}/"
    served = backend.deployer.record(config.endpoint_name)
    model_version = f"{config.model_package_group}/{served.version}" if served else "unknown"
    document = review.write_batch(output, selection, prefix, list(config.data.classes or []), model_version, batch)
    typer.echo(
        f"review batch {batch}: {len(document['images'])} photo(s) of {len(photos)} answered in {destination} "
        f"({', '.join(f'{n} {why}' for why, n in selection.skipped.items()) or 'none left out'}; {len(selection.unusable)} unusable)"
    )
    for entry in document["images"]:
        typer.echo(f"  {entry['score']:.2f}  {entry['image']}  {entry['reason']}")
    typer.echo(f"written to {output}: tasks.json, labeling-config.xml, adjustment.manifest, review.json, images/, contact-sheet.png")


def labelled_hashes(backend: LocalBackend) -> set[str]:
    """Every photo an execution here has trained or validated on, by content sha256 (PrepareData's images.jsonl)."""
    hashes: set[str] = set()
    for execution in backend.state.executions(limit=100000):
        for step in backend.state.steps(execution["id"]):
            if step["name"] != "PrepareData" or not step["properties"]:
                continue
            outputs = json.loads(step["properties"]).get("ProcessingOutputConfig", {}).get("Outputs", [])
            for item in outputs:
                if item.get("OutputName") != PREPARED_OUTPUT:
                    continue
                folder = backend.deployer.s3.path(item["S3Output"]["S3Uri"])
                for listing in folder.glob("images*.jsonl"):
                    hashes.update(json.loads(line)["sha256"] for line in listing.read_text().splitlines() if line.strip())
    return hashes
