"""The backend on AWS: SageMaker Pipelines' executions, the Model Registry and the endpoint, through boto3
(the control-plane calls are pipelines/aws.py; deployment is the deployment function's own code)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from containers.common import archives
from containers.deploy import deploy as deployment
from containers.deploy import monitor_start as monitoring
from pipelines import aws, backends, promote
from pipelines.backends import (
    Approval,
    BackendError,
    Execution,
    MonitorInputs,
    Package,
    ReviewPlace,
    ServiceQuality,
    Step,
    baseline_uris,
    mark_serving,
)
from pipelines.config import PROMOTE_ROLE, PROMOTE_ROLE_OUTPUT, READER_ROLE, READER_ROLE_OUTPUT, REVIEW_PREFIX, Config, stage_role_arn
from steps.evaluate import OUTPUT as EVALUATION


@dataclass(frozen=True)
class TransformJob:
    name: str
    version: int
    instance_type: str
    input_uri: str
    output_uri: str


@dataclass(frozen=True)
class MonitorReport:
    """The latest report of the scheduled monitoring job, copied into a local folder."""

    folder: str  # its S3 folder
    files: tuple[str, ...]  # the files copied
    missing: tuple[str, ...]  # the monitor's files the folder lacks (the starter writes only monitor.json for an empty window)


@dataclass(frozen=True)
class TransformSummary:
    uri: str
    files: int
    answered: int
    refused: int
    status: str
    failure: str


class AwsBackend:
    """The project's pipeline, group and endpoint in one AWS account and region."""

    def __init__(self, config: Config, *, region: str | None = None, endpoint_url: str | None = None, warn: Callable[[str], None] = lambda m: None):
        self.config = config
        self.session = aws.connect(region or config.aws.region, endpoint_url)
        self.where = f"AWS ({self.session.region})"
        self._warn = warn

    @cached_property
    def account(self) -> Config:
        """The config with unset account values (role, buckets, key) from the deployed stack's outputs."""
        return aws.with_stack_values(self.session, self.config, self._warn)

    @property
    def _sagemaker(self) -> Any:
        return self.session.client("sagemaker")

    def executions(self, limit: int) -> list[Execution]:
        return [_execution(description) for description in aws.list_executions(self._sagemaker, self.config.pipeline_name, limit)]

    def execution(self, reference: str) -> Execution:
        arn = aws.resolve_execution(self._sagemaker, self.config.pipeline_name, reference)
        execution = _execution(aws.describe_execution(self._sagemaker, arn))  # first: it names an unknown execution
        parameters = {p.get("Name", ""): p.get("Value", "") for p in aws.execution_parameters(self._sagemaker, arn)}
        steps = tuple(_step(step) for step in aws.execution_steps(self._sagemaker, arn))
        return replace(execution, parameters=parameters, steps=steps)

    def packages(self, limit: int) -> list[Package]:
        packages = aws.list_packages(self._sagemaker, self.session.client("s3"), self.config.model_package_group, limit)
        served = {stage: self._served_or_warn(stage, endpoint) for stage, endpoint in self.config.stage_endpoints.items()}
        measured = self._in_service()
        group = self.config.model_package_group
        packages = [replace(package, in_service=measured.get(f"{group}/{package.version}")) for package in packages]
        return mark_serving(packages, {stage: found.arn if found else None for stage, found in served.items()})

    def _in_service(self) -> dict[str, ServiceQuality]:
        """The accuracy in service that the newest report of each endpoint (the scheduled monitoring job's, or the
        starter's for a window without captures) gives the package it names, by "<group>/<version>": one GetObject
        per endpoint. When two endpoints name one package, the later window wins. A report that cannot be read is
        a warning, not a failure of the listing."""
        from containers.monitoring import monitor as program

        bucket = self.account.aws.artifact_bucket
        if not bucket:
            self._warn("the artifact bucket is unknown (aws.artifact_bucket): the accuracy in service is not shown")
            return {}
        s3, found = self.session.client("s3"), {}
        for endpoint in self.config.stage_endpoints.values():
            reports = self.config.monitoring_reports(bucket, endpoint)
            try:
                folder = aws.latest_report(s3, reports, program.MONITOR)
                if folder is None:
                    continue
                answer = s3.get_object(Bucket=bucket, Key=folder + program.MONITOR)
                measured = ServiceQuality.of(json.loads(answer["Body"].read()), endpoint, answer.get("LastModified"))
            except (ClientError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
                self._warn(f"cannot read the latest monitoring report under {reports} ({exc}): its accuracy in service is not shown")
                continue
            if measured is not None:
                package, quality = measured
                kept = found.get(package)
                if kept is None or (quality.when or datetime.min.replace(tzinfo=UTC)) > (kept.when or datetime.min.replace(tzinfo=UTC)):
                    found[package] = quality
        return found

    def set_approval(self, reference: str, status: str, comment: str | None) -> Approval:
        arn = aws.resolve_package(self._sagemaker, self.config.model_package_group, reference)
        change = aws.set_approval(self._sagemaker, self.session.client("sts"), arn, status, comment)
        served = self._served() if status == "Rejected" else None
        return Approval(change.version, change.previous, change.status, change.description, still_served=served is not None and served.arn == arn)

    def deploy(self, reference: str | None, *, force: bool = False, reason: str = "") -> deployment.DeployResult:
        """Deploy to the first stage, where approvals deploy: in its own account (deployment.accounts) through that
        stage's promote role and its deploy function's settings, as `promote` deploys there."""
        config = self.account
        first = config.approval_stage
        settings, into = self._stage_target(first) if first in config.stage_accounts else (self._settings(config.approval_endpoint), None)
        group = config.model_package_group
        arn = aws.resolve_package(self._sagemaker, group, reference) if reference else aws.newest_approved(self._sagemaker, group)
        return self._deploy(settings, arn, force=force, reason=reason, into=into)

    def _stage_target(self, stage: str, role_arn: str | None = None) -> tuple[deployment.DeploySettings, aws.Aws]:
        """A stage in an account of its own, to deploy to: its promote role's session (or `role_arn`'s), and its deploy
        function's settings (the one place the stage's settings are kept)."""
        session = self._stage_session(stage, role_arn)
        return aws.stage_deploy_settings(session, self.config, stage, self.config.stage_accounts[stage].account), session

    def _settings(self, endpoint: str) -> deployment.DeploySettings:
        """The deployment function's settings for one of the project's endpoints, from pipeline.yaml and the stack."""
        config = self.account
        if not config.aws.role_arn:
            raise aws.usage_error("deploying needs the role the endpoint's model runs as: set aws.role_arn in pipeline.yaml")
        capture = None
        if config.deployment.data_capture_percent > 0:
            if not config.aws.artifact_bucket:
                raise aws.usage_error(
                    "data capture writes to the artifact bucket: set aws.artifact_bucket in pipeline.yaml (or deployment.data_capture_percent: 0)"
                )
            capture = str(config.data_capture(config.aws.artifact_bucket, endpoint))
        try:
            return deployment.DeploySettings.from_config(
                config, role_arn=config.aws.role_arn, data_capture_s3_uri=capture, kms_key_id=config.aws.kms_key_id, endpoint_name=endpoint
            )
        except deployment.SettingsError as exc:
            raise aws.usage_error(f"deployment settings: {exc}") from None

    def _deploy(
        self, settings: deployment.DeploySettings, arn: str, *, force: bool, reason: str, into: aws.Aws | None = None
    ) -> deployment.DeployResult:
        """Deploy in the workflow's account, or `into` a stage account's session. There the package is still
        described, and its archive read, in the workflow's account with the caller's own rights (`registry`, `s3`),
        and the stage's session makes the model, endpoint and scaling, and copies the archive when it must."""
        target = into or self.session
        across = {} if target is self.session else {"registry": self._sagemaker, "copy_s3": target.client("s3")}
        try:
            return deployment.deploy_package(
                target.client("sagemaker"),
                target.client("application-autoscaling"),
                settings,
                arn,
                force=force,
                reason=reason,
                s3=self.session.client("s3"),
                **across,
            )
        except deployment.DeployError as exc:
            raise aws.ControlPlaneError(str(exc)) from None

    def review_place(self) -> ReviewPlace:
        """On AWS the images prefix is ImagesS3Prefix's default (s3://<data bucket>/images/ unless
        pipeline.images_prefix says otherwise), what the new-data trigger's executions read."""
        account = self.account
        data, artifacts = account.aws.data_bucket, account.aws.artifact_bucket
        if not data or not artifacts:
            raise BackendError("the data and artifact buckets are unknown: deploy the stack, or set aws.data_bucket and aws.artifact_bucket", 2)
        served = self._served()
        version = (served.group, served.version) if served else None
        baseline, reason = self._data_baseline(served)
        return ReviewPlace.of(
            account, self.session.client("s3"), data=data, artifacts=artifacts, images_prefix=None, served=version,
            data_baseline=baseline, no_baseline=reason,
        )  # fmt: skip

    def _data_baseline(self, served: deployment.ServedPackage | None) -> tuple[str | None, str]:
        """The served package's data baseline as it records it (DriftCheckBaselines), or None and why."""
        if served is None:
            return None, f"nothing is deployed to {self.config.endpoint_name}"
        which = f"version {served.version} of {served.group or self.config.model_package_group}, which {self.config.endpoint_name} serves,"
        try:
            package = self._sagemaker.describe_model_package(ModelPackageName=served.arn)
        except ClientError as exc:
            if not aws.is_not_found(exc):
                raise
            return None, f"{which} was deleted"
        uri = baseline_uris(package.get("DriftCheckBaselines")).get("data")
        return uri, "" if uri else f"{which} records no data baseline (DriftCheckBaselines.ModelDataQuality)"

    def latest_report(self, endpoint: str, output: Path) -> MonitorReport:
        """Copy the newest report the scheduled monitoring job wrote for `endpoint` into `output`; report.html is
        its owner's alone there (0o600), as the monitor writes it: it shows customers' photos."""
        from containers.monitoring import monitor as program

        config = self.account
        bucket = self._artifact_bucket(config)
        s3 = self.session.client("s3")
        reports = config.monitoring_reports(bucket, endpoint)
        folder = aws.latest_report(s3, reports, program.MONITOR)
        if folder is None:
            raise BackendError(
                f"no monitoring report under {reports} yet: the schedule ({config.monitoring.schedule}) writes one a window; "
                "or run the monitor here over a window: --since ISO [--until ISO]"
            )
        output.mkdir(parents=True, exist_ok=True)
        files, missing = [], []
        for name in (program.REPORT, program.ATYPICAL, program.MONITOR):  # monitor.json last, as the monitor writes it
            try:
                body = s3.get_object(Bucket=bucket, Key=folder + name)["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise
                missing.append(name)
                continue
            program.write(output / name, body, private=name == program.REPORT)
            files.append(name)
        return MonitorReport(f"s3://{bucket}/{folder}", tuple(files), tuple(missing))

    def monitor_inputs(self, endpoint: str, since: datetime | None, until: datetime | None, work: Path) -> MonitorInputs:
        """The window's capture hour folders, the served package's baselines, the label files and the capture
        files review batches took photos from, downloaded into `work`, found by the scheduled job's starter's own
        functions (containers/deploy/monitor_start.py): its hour folders, the baselines the package records where
        the monitoring job may read them, and what the job reads for the accuracy in service, with the time the
        served package's endpoint config was made (--served-since). On AWS an open start would download every
        capture the endpoint made: `since` is needed."""
        if since is None:
            raise aws.usage_error("on AWS a window needs --since: an open start would download every capture the endpoint ever made")
        config = self.account
        bucket = self._artifact_bucket(config)
        s3, settings = self.session.client("s3"), _monitoring_settings(config, bucket)
        place = settings.endpoints[endpoint]
        hours = monitoring.captured_hours(s3, bucket, place, endpoint, hours_covering(since, until or datetime.now(UTC)))
        captures, files = work / "captures", 0
        captures.mkdir()
        for hour in hours:
            where = aws.parse_s3_uri(f"s3://{bucket}/{monitoring.hour_prefix(place, endpoint, hour)}")
            files += len(aws.download_prefix(s3, where, captures / f"{hour:%Y/%m/%d/%H}"))
        said = [f"captures: {files} file(s) in {len(hours)} hour folder(s) under s3://{bucket}/{place.captures}{endpoint}/"]
        described = deployment.describe_endpoint(self._sagemaker, endpoint)
        found = monitoring.baselines_of(self._sagemaker, settings, described) if described else monitoring.Baselines()
        notes = [f"warning: {note}" for note in (found.notes or ([] if described else [f"there is no endpoint {endpoint} now: no baseline"]))]
        baseline = work / "baseline"
        baseline.mkdir()
        for name, kind in monitoring.BASELINES.values():
            if found.folder and kind not in found.missing:
                where = aws.parse_s3_uri(found.folder + name)
                s3.download_file(where.bucket, where.key, str(baseline / name))
                said.append(f"{kind} baseline: {found.folder}{name}")
        accuracy = monitoring.Labelled(notes=("the data bucket is unknown (aws.data_bucket): no labels, no accuracy in service",))
        if settings.labels:  # both of the job's inputs for it: no job here limits their number
            accuracy = monitoring.accuracy_inputs(self._sagemaker, s3, settings, endpoint, described, found, monitoring.ACCURACY_INPUTS)
        notes += [f"note: {note}" for note in accuracy.notes]
        labels = labelled = None
        if accuracy.labels:  # the label files the job's manifest names (not a YOLO set's images)
            where, labels = aws.parse_s3_uri(settings.labels), work / "labels"
            aws.download_prefix(s3, where, labels, keep={where.key + name for name in accuracy.labels}.__contains__)
            said.append(f"labels: {len(accuracy.labels)} file(s) under {settings.labels} (the accuracy in service, on photos from review batches)")
        if accuracy.captures:  # each yyyy/mm/dd/hh/<file> below the variant folder, listed by its hour folder
            variant, labelled = monitoring.variant_folder(settings, endpoint), work / "labelled-captures"
            wanted = {aws.parse_s3_uri(variant + name).key for name in accuracy.captures}
            for hour in sorted({name.rpartition("/")[0] for name in accuracy.captures}):
                aws.download_prefix(s3, aws.parse_s3_uri(f"{variant}{hour}/"), labelled / hour, keep=wanted.__contains__)
            answered = f", answered since {monitoring.iso(accuracy.served_since)}" if accuracy.served_since else ""
            said.append(f"labelled captures: {len(accuracy.captures)} file(s) under {variant} that review batches took photos from{answered}")
        return MonitorInputs(captures, baseline, found.package, labels, accuracy.served_since, tuple(said), tuple(notes), labelled_captures=labelled)

    def report(self, reference: str) -> backends.PackageReport:
        """The package's report page, read from S3 where its metadata's ReportUri says Evaluate wrote it."""
        arn = aws.resolve_package(self._sagemaker, self.config.model_package_group, reference)
        package = aws.describe_package(self._sagemaker, arn)
        version = int(package["ModelPackageVersion"])
        uri = backends.report_uri(version, package.get("CustomerMetadataProperties"))
        location = aws.parse_s3_uri(uri)
        try:
            body = self.session.client("s3").get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
            raise BackendError(f"version {version}'s report page {uri} is not in S3 (NoSuchKey): it was deleted") from None
        return backends.PackageReport(version, uri, body)

    def _artifact_bucket(self, config: Config) -> str:
        if not config.aws.artifact_bucket:
            raise BackendError("the artifact bucket is unknown: deploy the stack, or set aws.artifact_bucket", 2)
        return config.aws.artifact_bucket

    # fmt: off
    def promote(self, reference: str | None, *, source: str | None, images: Path | None, count: int, force: bool = False,
                reason: str = "", role_arn: str | None = None) -> promote.Promotion:
        # fmt: on
        """A stage in an account of its own (deployment.accounts) is reached through its promote role: the source's
        for what it serves and the smoke test, the target's (or `role_arn`) to read its deploy function's settings
        and deploy. Packages, archives and smoke photos stay the workflow account's, read with the caller's rights."""
        stages = self.config.stage_endpoints
        source, target = promote.next_stage(stages, source)
        target_role = self._target_role(target, role_arn)  # before any request: a wrong value is found first
        origin = self._stage_session(source)
        served = self._served(stages[source], origin.client("sagemaker"))
        if served is None:
            raise aws.usage_error(f"nothing is deployed to {source} ({stages[source]}{self._account_of(source)}) yet: approve a package first")
        if reference:
            arn = aws.resolve_package(self._sagemaker, self.config.model_package_group, reference)
            if arn != served.arn:
                raise aws.usage_error(f"{source} serves version {served.version}, not {reference}: deploy that one to {source} first")
        # The settings before the smoke test: a missing value is found first.
        if target in self.config.stage_accounts:
            settings, destination = self._stage_target(target, target_role)
        else:
            settings, destination = self._settings(stages[target]), self.session
        package = self._sagemaker.describe_model_package(ModelPackageName=served.arn)
        smoke_images = promote.folder_images(images, count) if images is not None else self._validation_images(package, count)
        runtime = origin.client("sagemaker-runtime")
        answers = promote.smoke(smoke_images, lambda body: _invoke(runtime, stages[source], body), self.config.data.classes)
        passed = all(a.problem is None for a in answers)
        result = self._deploy(settings, served.arn, force=force, reason=reason, into=destination) if passed else None
        return promote.Promotion(
            served.version, served.arn, f"{source} ({stages[source]}{self._account_of(source)})",
            f"{target} ({stages[target]}{self._account_of(target)})", answers, result,
        )  # fmt: skip

    def _account_of(self, stage: str) -> str:
        """The words ", account N" for a stage in an account of its own, for messages; else nothing."""
        place = self.config.stage_accounts.get(stage)
        return f", account {place.account}" if place else ""

    def _target_role(self, stage: str, role_arn: str | None) -> str | None:
        """`--role-arn`, checked: a role of the account the target stage is served from."""
        if role_arn is None:
            return None
        place = self.config.stage_accounts.get(stage)
        if place is None:
            raise aws.usage_error(
                f"--role-arn: {stage} is served from the workflow's account (deployment.accounts does not name another), "
                "where promote deploys with your own credentials: drop --role-arn"
            )
        role = aws.parse_role_arn(role_arn, "--role-arn")
        if role.account != place.account:
            raise aws.usage_error(
                f"--role-arn {role.arn} is a role of account {role.account}, but {stage} is served from account {place.account} (deployment.accounts)"
            )
        return role.arn

    @cached_property
    def _caller(self) -> aws.Caller:
        return aws.caller(self.session.client("sts"))

    def _stage_session(self, stage: str, role_arn: str | None = None, *, kind: str = PROMOTE_ROLE) -> aws.Aws:
        """The session that reaches a stage: the workflow's own for a stage in its account, else the stage's promote
        role (or `role_arn`; `kind` READER_ROLE: its read-only role), assumed in the stage's region (its own, or the
        workflow's). A refusal is one line that says how to get the role right."""
        place = self.config.stage_accounts.get(stage)
        if place is None:
            return self.session
        caller, stack = self._caller, self.config.stage_stack_name(stage)
        role = role_arn or stage_role_arn(self.config.project.name, stage, place.account, kind, partition=caller.partition)
        output = PROMOTE_ROLE_OUTPUT if kind == PROMOTE_ROLE else READER_ROLE_OUTPUT
        try:
            return aws.assume_role(self.session, role, region=place.region or self.session.region, session_name=caller.session_name(kind))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            said = " ".join(str(error.get("Message") or exc).split())
            override = " (deploy it, or name another role of the next stage's account with --role-arn)" if kind == PROMOTE_ROLE else " (deploy it)"
            raise aws.ControlPlaneError(
                f"cannot assume {role} for stage {stage} (account {place.account}): {error.get('Code', 'error')}: {said}; the stage's "
                f"stack {stack} outputs its {kind} role as {output}{override}, and your own policy must allow sts:AssumeRole on that role"
            ) from None

    def _validation_images(self, package: Mapping[str, Any], count: int) -> list[promote.SmokeImage]:
        """The first photos of the validation records the package was evaluated on (its ValidationData metadata)."""
        prefix = (package.get("CustomerMetadataProperties") or {}).get(promote.VALIDATION_METADATA)
        if not prefix:
            version = package.get("ModelPackageVersion")
            raise aws.usage_error(f"version {version} does not record its validation data ({promote.VALIDATION_METADATA}): pass --images DIR")
        location = aws.parse_s3_uri(prefix.rstrip("/") + "/")
        s3 = self.session.client("s3")
        with tempfile.TemporaryDirectory(prefix="cardamage-smoke-") as work:
            for listed in s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.key):
                for item in listed.get("Contents", []):
                    if item["Key"].endswith(".tfrecord"):
                        target = archives.inside(Path(work), item["Key"][len(location.key) :])
                        if target is None:  # a listed key is the bucket's, not ours: it may not leave the folder
                            raise aws.ControlPlaneError(
                                f"s3://{location.bucket}/{item['Key']}: refused: below {prefix} the key leads out of the local "
                                "folder it is downloaded to (a leading '/' or a '..' part); rename the object"
                            )
                        target.parent.mkdir(parents=True, exist_ok=True)
                        s3.download_file(location.bucket, item["Key"], str(target))
                        break  # one shard holds enough photos for a smoke test
                else:
                    continue
                break
            return promote.record_images(Path(work), count, source=prefix)

    def batch_transform(
        self,
        reference: str | None,
        input_uri: str,
        output_uri: str,
        *,
        instance_type: str | None = None,
        score_threshold: float | None = None,
        max_detections: int | None = None,
        now: datetime | None = None,
    ) -> TransformJob:
        """Start a Batch Transform job over `input_uri` on the package (`reference`, else the newest Approved),
        as a network-isolated model made the deployment function's way, its output under `output_uri`."""
        config = self.account
        if not config.aws.role_arn:
            raise aws.usage_error("batch-predict needs the role the job's model runs as: set aws.role_arn in pipeline.yaml (or deploy the stack)")
        if not self.config.aws.role_arn and config.aws.data_bucket and config.aws.artifact_bucket:  # the stack's role: its grants
            reads, writes = config.batch_prefixes(config.aws.data_bucket, config.aws.artifact_bucket)
            if not (input_uri.startswith(str(reads)) and output_uri.startswith(str(writes))):
                raise aws.usage_error(
                    f"the transform job runs as the stack's SageMaker role, which reads photos under {reads} and writes answers under "
                    f"{writes} only: upload the photos to {reads}<name>/, then --input {reads}<name>/ --output {writes}<name>/ "
                    "(or set aws.role_arn to a role of your own that reads and writes where you want)"
                )
        try:
            values = deployment.config_values(config, role_arn=config.aws.role_arn, kms_key_id=config.aws.kms_key_id)
            settings = deployment.DeploySettings(**{**values, "data_capture_percent": 0})  # a job, not the endpoint: nothing to capture
        except deployment.SettingsError as exc:
            raise aws.usage_error(f"deployment settings: {exc}") from None
        group = config.model_package_group
        arn = aws.resolve_package(self._sagemaker, group, reference) if reference else aws.newest_approved(self._sagemaker, group)
        package = aws.describe_package(self._sagemaker, arn)
        version = int(package["ModelPackageVersion"])
        tags = {"project": config.project.name, "cardamage:model-package-arn": arn}
        model_name = deployment.create_model(self._sagemaker, settings, package, [{"Key": k, "Value": v} for k, v in tags.items()])
        environment = {
            deployment.ENVIRONMENT[name]: str(value)  # the handler's variables, as the deployment function names them
            for name, value in (("score_threshold", score_threshold), ("max_detections", max_detections))
            if value is not None
        }
        chosen = instance_type or config.deployment.instance_type
        name = aws.default_job_name(f"{config.project.name}-batch-v{version}", now)[:63].rstrip("-")
        request = aws.transform_job_request(
            job_name=name,
            model_name=model_name,
            input_uri=input_uri,
            output_uri=output_uri,
            instance_type=chosen,
            kms_key_id=config.aws.kms_key_id,
            instance_storage=deployment.has_instance_storage(chosen),
            environment=environment,
            tags=tags,
        )
        self._sagemaker.create_transform_job(**request)
        return TransformJob(name, version, chosen, input_uri, output_uri)

    def finish_batch_transform(self, job: TransformJob, *, progress=lambda status: None, poll: float = 30) -> TransformSummary:
        """Wait for the job, then write summary.csv beside its answers (one row per input object)."""
        from pipelines import batch

        description = aws.wait_for_transform_job(self._sagemaker, job.name, report=progress, poll=poll)
        s3 = self.session.client("s3")
        outcomes = aws.transform_outcomes(s3, job.input_uri, job.output_uri)
        text = batch.summary_text(outcomes, batch.class_names({}, outcomes))
        target = aws.parse_s3_uri(job.output_uri)
        key = f"{target.key.rstrip('/')}/{batch.SUMMARY}" if target.key else batch.SUMMARY
        key_id = self.account.aws.kms_key_id
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_id} if key_id else {}
        s3.put_object(Bucket=target.bucket, Key=key, Body=text.encode(), ContentType="text/csv", **extra)
        refused = sum(1 for outcome in outcomes if outcome.error is not None)
        status = description.get("TransformJobStatus", "")
        failure = description.get("FailureReason", "") if status != "Completed" else ""
        return TransformSummary(f"s3://{target.bucket}/{key}", len(outcomes), len(outcomes) - refused, refused, status, failure)

    def _served(self, endpoint_name: str | None = None, sagemaker: Any = None) -> deployment.ServedPackage | None:
        """The package an endpoint (by default production's) serves, as the deployment function tagged it;
        `sagemaker`: a client of the endpoint's account. Without one, a stage's endpoint in an account of its own is
        read through that stage's read-only role (the reader role), any other in the workflow's account."""
        name = endpoint_name or self.config.endpoint_name
        if sagemaker is None:
            stage = next((stage for stage, endpoint in self.config.stage_endpoints.items() if endpoint == name), None)
            far = stage is not None and stage in self.config.stage_accounts
            sagemaker = self._stage_session(stage, kind=READER_ROLE).client("sagemaker") if far else self._sagemaker
        endpoint = deployment.describe_endpoint(sagemaker, name)
        return deployment.served_package(sagemaker, endpoint) if endpoint else None

    def _served_or_warn(self, stage: str, endpoint: str) -> deployment.ServedPackage | None:
        """What a stage serves, for listings: a stage account that cannot be read is a warning, not a failure."""
        try:
            return self._served(endpoint)
        except aws.ControlPlaneError as exc:
            self._warn(f"what {stage} serves is not shown: {exc}")
            return None


def hours_covering(since: datetime, until: datetime) -> monitoring.Window:
    """The whole hours (UTC) that hold [since, until): the capture folders to read."""
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(UTC)
    last = end.replace(minute=0, second=0, microsecond=0)
    return monitoring.Window(start, last if last == end else last + timedelta(hours=1))


def _monitoring_settings(config: Config, bucket: str) -> monitoring.Settings:
    """The starter's settings for what it finds (its endpoints' places, the group, where baselines may be read,
    the labels prefix and where review batches are), as the stack gives them (infra/drift.py); the job's own
    settings are not used here and are left empty. Without a data bucket there is no labels prefix: empty."""
    places = {
        endpoint: monitoring.Place(stage, config.data_capture(bucket, endpoint).key, config.monitoring_reports(bucket, endpoint).key)
        for stage, endpoint in config.stage_endpoints.items()
    }
    return monitoring.Settings(
        bucket=bucket, endpoints=places, group=config.model_package_group, role_arn="", image_uri="", kms_key_id="", instance_type="",
        volume_size_gb=0, max_runtime_seconds=0, window_hours=1, atypical=config.monitoring.atypical, job_prefix=config.monitoring_job_prefix,
        baseline_prefix=f"{config.pipeline_name}/", baseline_folder=EVALUATION,
        labels=str(config.labels_prefix(config.aws.data_bucket)) if config.aws.data_bucket else "", reviews=REVIEW_PREFIX,
    )  # fmt: skip


def _invoke(runtime: Any, endpoint: str, body: bytes) -> tuple[int, bytes]:
    """One InvokeEndpoint: (status, answer). The container's own 4xx/5xx come back as ModelError (424) with the
    original status and message (the runtime API reference's InvokeEndpoint errors)."""
    try:
        answer = runtime.invoke_endpoint(EndpointName=endpoint, ContentType=promote.IMAGE_CONTENT_TYPE, Accept="application/json", Body=body)
    except ClientError as exc:
        error = exc.response
        if error.get("Error", {}).get("Code") == "ModelError":
            return int(error.get("OriginalStatusCode") or 500), str(error.get("OriginalMessage") or error["Error"].get("Message", "")).encode()
        return int(error.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500), str(error.get("Error", {}).get("Message", exc)).encode()
    return 200, answer["Body"].read()


def _execution(description: Mapping[str, Any]) -> Execution:
    status = description.get("PipelineExecutionStatus", "")
    arn = description.get("PipelineExecutionArn", "")
    return Execution(
        id=arn.rsplit("/", 1)[-1],
        status=status,
        started=_moment(description.get("CreationTime")),
        ended=_moment(description.get("LastModifiedTime")) if status in aws.TERMINAL else None,
        failure=_reason(description.get("FailureReason")),
        arn=arn,
    )


def _step(step: Mapping[str, Any]) -> Step:
    return Step(
        name=step.get("StepDisplayName") or step.get("StepName", ""),
        status=step.get("StepStatus", ""),
        started=_moment(step.get("StartTime")),
        ended=_moment(step.get("EndTime")),
        detail=aws.step_detail(step),
        failure=_reason(step.get("FailureReason")),
    )


def _moment(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _reason(text: Any) -> str:
    text = str(text or "").strip()
    return "" if text == "None" else text
