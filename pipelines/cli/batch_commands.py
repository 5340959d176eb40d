"""`cardamage batch-predict`: the backlog of claim photos through the endpoint's handler.

Here (--local) every file of a folder goes through the local endpoint's model on all cores; on AWS a
SageMaker Batch Transform job runs the approved package (or --model N) with the same handler, its output
encrypted with the stack's KMS key. Both end in summary.csv (pipelines/batch.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from containers.common.s3 import is_s3_uri
from pipelines.cli.app import Invocation, Side, command, fail
from pipelines.cli.local_commands import _model_for, _quiet_tensorflow, custom_attributes
from pipelines.cli.options import MaxDetectionsOption, ModelOption, ScoreThresholdOption, option
from pipelines.cli.output import console


@command(Side.BOTH, "batch-predict")
def batch_predict(
    cli: Invocation,
    source: option(str, "--input", "-i", metavar="PHOTOS", help="The photos: a folder here, an S3 prefix (s3://bucket/prefix/) on AWS."),
    output: option(str, "--output", "-o", metavar="OUT", help="Where the answers and summary.csv go: a folder here, an S3 prefix on AWS."),
    model: ModelOption = None,
    score_threshold: ScoreThresholdOption = None,
    max_detections: MaxDetectionsOption = None,
    pictures: option(bool, "--pictures", help="Also draw each photo's boxes (<name>.png; here only).") = False,
    workers: option(int | None, "--workers", metavar="N", min=1, help="Photos in flight here (default: every core).") = None,
    instance_type: option(str | None, "--instance-type", metavar="TYPE", help="The transform job's instance type (default: deployment's).") = None,
    no_wait: option(bool, "--no-wait", help="On AWS: start the job and return (default: wait, then write summary.csv).") = False,
) -> None:
    """Predict a folder (or S3 prefix) of photos in one go: `<name>.json` per photo and summary.csv (boxes per
    class, top score, damaged-area share per class; an `error` for each file the handler refused).

    With --local, the local endpoint's model (or --model N) through the endpoint's handler, on every core.
    On AWS, a SageMaker Batch Transform job on the newest approved package (or --model N); its answers are
    Batch Transform's `<name>.out` files, and summary.csv is written when the job ends."""
    attributes = custom_attributes(score_threshold, max_detections)
    if cli.is_local:
        _batch_here(cli, source, output, model, attributes, pictures, workers)
    else:
        _batch_on_aws(cli, source, output, model, score_threshold, max_detections, instance_type, wait=not no_wait)


def _batch_here(cli: Invocation, source: str, output: str, model: str | None, attributes: str | None, pictures: bool, workers: int | None) -> None:
    from tqdm import tqdm

    from containers.inference.local import LocalEndpoint
    from pipelines import batch
    from pipelines.local.console import relative
    from pipelines.local.endpoint import apply_serving_environment

    if is_s3_uri(source) or is_s3_uri(output):
        fail("with --local, --input and --output are folders on this machine", 2)
    folder, target = Path(source), Path(output)
    if not folder.is_dir():
        fail(f"--input {source}: no such folder", 2)
    _quiet_tensorflow()
    backend, arn = _model_for(cli, model)
    model_dir, environment = backend.deployer.model(cli.config.endpoint_name, arn)
    apply_serving_environment(environment)
    endpoint = LocalEndpoint(model_dir)

    def invoke(body: bytes, content_type: str, chosen: str | None) -> tuple[int, bytes, str]:
        return endpoint.invoke(body, content_type, chosen, "application/json")

    def progress(items, total):
        return tqdm(items, total=total, desc="predicting", unit="img", file=sys.stderr, leave=False)

    result = batch.run_local(invoke, endpoint.classes, folder, target, attributes=attributes, pictures=pictures, workers=workers, progress=progress)
    out = console()
    answered = len(result.outcomes) - len(result.refused)
    out.print(f"{len(result.outcomes)} file(s): {answered} answered, {len(result.refused)} refused; model {relative(model_dir)}", markup=False)
    for refused in result.refused:
        out.print(f"  refused {refused.image}: {refused.error}", markup=False, soft_wrap=True)
    out.print(f"summary: {result.summary}", markup=False, soft_wrap=True)


def _batch_on_aws(
    cli: Invocation,
    source: str,
    output: str,
    model: str | None,
    score_threshold: float | None,
    max_detections: int | None,
    instance_type: str | None,
    wait: bool,
) -> None:
    from pipelines.backends.aws import AwsBackend

    if not (is_s3_uri(source) and is_s3_uri(output)):
        fail("on AWS, --input and --output are S3 prefixes (s3://bucket/prefix/); add --local for folders here", 2)
    backend = cli.backend()
    assert isinstance(backend, AwsBackend)
    out = console()
    job = backend.batch_transform(model, source, output, instance_type=instance_type, score_threshold=score_threshold, max_detections=max_detections)
    out.print(f"started Batch Transform job {job.name} on package version {job.version} ({job.instance_type})", markup=False)
    if not wait:
        out.print(f"follow it: aws sagemaker describe-transform-job --transform-job-name {job.name}", markup=False)
        return
    summary = backend.finish_batch_transform(job, progress=lambda status: out.print(f"  {status}", markup=False))
    out.print(f"{summary.files} file(s): {summary.answered} answered, {summary.refused} refused", markup=False)
    out.print(f"summary: {summary.uri}", markup=False, soft_wrap=True)
    if summary.failure:
        fail(f"the job ended {summary.status}: {summary.failure}", 1)
