"""One deployment rule, two deployers: every case of the table goes through the deployment function's code
against moto (AWS) and through the local deployer, and both must decide alike (containers/deploy/deploy.py
`decide`). moto lacks UpdateEndpoint, which is stubbed (tests/aws_fakes.py); the endpoint's tags, which say
what it serves, are moto's."""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass, replace

import pytest

from containers.deploy.deploy import METADATA_SHA256, Candidate, DeployResult, DeploySettings, decide, deploy_package
from pipelines.local.endpoint import LocalDeployer
from pipelines.local.state import State
from pipelines.local.storage import LocalS3
from tests.aws_fakes import ACCOUNT, REGION, ROLE, client, isolate_aws, moto_server, stub_operation
from tests.containers.deploy.test_deploy import register

GROUP, OTHER, ENDPOINT = "car-damage-models", "other-models", "car-damage-endpoint"


@dataclass(frozen=True)
class Case:
    name: str
    registered: tuple[tuple[str, str, float | None], ...]  # (group, status, mAP) of versions 1, 2, ... in order
    served: int | None  # the package deployed first (1-based index into `registered`; by the rule, unforced), or none
    offered: int  # the package offered (1-based index into `registered`)
    force: bool = False
    reason: str = ""
    deployed: bool = False  # what both deployers must do
    because: str = ""  # the rule's reason both must give
    served_by: str = GROUP  # the group of the deployer that deployed the served package
    at_registration: bool = False  # the statuses were set by the executions that registered the packages, not by people
    registry_approval_status: str = "PendingManualApproval"  # the configuration's (REGISTRY_APPROVAL_STATUS)


A, P, R = "Approved", "PendingManualApproval", "Rejected"
CASES = [
    Case("first package", ((GROUP, A, 0.3),), None, 1, deployed=True, because="nothing is served yet: version 1 is deployed"),
    Case("newer and better", ((GROUP, A, 0.3), (GROUP, A, 0.4)), 1, 2, deployed=True, because="version 2 replaces the served version 1"),
    Case("newer, mAP unknown", ((GROUP, A, 0.3), (GROUP, A, None)), 1, 2, deployed=True, because="version 2 replaces the served version 1"),
    Case("the served one again", ((GROUP, A, 0.3),), 1, 1, because="the endpoint already serves version 1"),
    Case("the served one, forced", ((GROUP, A, 0.3),), 1, 1, force=True, reason="again", because="the endpoint already serves version 1"),
    Case("older", ((GROUP, A, 0.3), (GROUP, A, 0.4)), 2, 1,
         because="version 1 is older than the served version 2 (force it with a reason to roll back)"),
    Case("older, forced without reason", ((GROUP, A, 0.3), (GROUP, A, 0.4)), 2, 1, force=True,
         because="version 1 is older than the served version 2: forcing it needs a reason"),
    Case("older, forced with reason", ((GROUP, A, 0.3), (GROUP, A, 0.4)), 2, 1, force=True, reason="v2 misses scratches", deployed=True,
         because="forced: version 1 is older than the served version 2; reason: v2 misses scratches"),
    Case("newer but worse", ((GROUP, A, 0.4), (GROUP, A, 0.3)), 1, 2,
         because="version 2's mAP 0.3000 is below the served version 1's 0.4000 (force it with a reason to roll back)"),
    Case("newer but worse, forced", ((GROUP, A, 0.4), (GROUP, A, 0.3)), 1, 2, force=True, reason="needs the new class", deployed=True,
         because="forced: version 2's mAP 0.3000 is below the served version 1's 0.4000; reason: needs the new class"),
    Case("pending", ((GROUP, A, 0.3), (GROUP, P, 0.5)), 1, 2, because="version 2 is PendingManualApproval, not Approved"),
    Case("rejected, forced", ((GROUP, A, 0.3), (GROUP, R, 0.5)), 1, 2, force=True, reason="please", because="version 2 is Rejected, not Approved"),
    Case("another group", ((GROUP, A, 0.3), (OTHER, A, 0.9)), 1, 2, force=True, reason="please",
         because=f"the package belongs to group {OTHER!r}; this endpoint serves group {GROUP!r}"),
    Case("the endpoint serves another group's", ((OTHER, A, 0.9), (GROUP, A, 0.3)), 1, 2, served_by=OTHER, deployed=True,
         because=f"the endpoint serves a package of group {OTHER!r}: version 1 of {GROUP!r} replaces it"),
    # An execution registered it Approved (ModelApprovalStatus in its request): no person approved it.
    Case("registered Approved", ((GROUP, A, 0.3),), None, 1, at_registration=True,
         because="version 1 was registered Approved by its pipeline execution, but registry.approval_status is PendingManualApproval: "
                 "only a person's approval deploys it (cardamage approve, or the Model Registry)"),
    Case("registered Approved, forced", ((GROUP, A, 0.3),), None, 1, at_registration=True, force=True, reason="please",
         because="version 1 was registered Approved by its pipeline execution, but registry.approval_status is PendingManualApproval: "
                 "only a person's approval deploys it (cardamage approve, or the Model Registry)"),
    Case("registered Approved where the configuration approves", ((GROUP, A, 0.3),), None, 1, at_registration=True,
         registry_approval_status=A, deployed=True, because="nothing is served yet: version 1 is deployed"),
]  # fmt: skip


def model_archive() -> bytes:
    """A model.tar.gz the local deployer can unpack (it does not load the model)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        data = b"not a real SavedModel"
        info = tarfile.TarInfo("1/saved_model.pb")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture(scope="module")
def server():
    with moto_server() as running:
        yield running


def on_aws(server, case: Case, monkeypatch, tmp_path) -> DeployResult:
    server.reset()
    isolate_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)  # the S3 client deploy_package makes itself reads from moto
    sagemaker, autoscaling = client("sagemaker", server.url), client("application-autoscaling", server.url)
    stub_operation(
        sagemaker.meta.events, "sagemaker", "UpdateEndpoint", lambda params: {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/x"}
    )
    for group in (GROUP, OTHER):
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    arns = [register(sagemaker, status, group, map_value, at_registration=case.at_registration) for group, status, map_value in case.registered]
    settings = DeploySettings(
        endpoint_name=ENDPOINT,
        role_arn=ROLE,
        model_package_group=GROUP,
        data_capture_percent=0,
        registry_approval_status=case.registry_approval_status,
    )
    if case.served is not None:
        first = replace(settings, model_package_group=case.served_by)
        assert deploy_package(sagemaker, autoscaling, first, arns[case.served - 1]).status == "created"
    return deploy_package(sagemaker, autoscaling, settings, arns[case.offered - 1], force=case.force, reason=case.reason)


def here(case: Case, tmp_path) -> DeployResult:
    state_dir = tmp_path / "local"
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(model_archive())
    s3.put_file(archive, "s3://local-artifacts/model.tar.gz")
    digest = {METADATA_SHA256: hashlib.sha256(archive.read_bytes()).hexdigest()}
    packages = [
        state.register(group, status if case.at_registration else P, "s3://local-artifacts/model.tar.gz", None, None, map_value, digest, None)
        for group, status, map_value in case.registered
    ]
    if not case.at_registration:  # a person sets each status, as on AWS
        packages = [state.set_status(package.arn, status, "by a person") for package, (_, status, _) in zip(packages, case.registered, strict=True)]
    if case.served is not None:
        first = LocalDeployer(state, s3, state_dir / "endpoints", group=case.served_by, registry_approval_status=case.registry_approval_status)
        assert first.deploy(packages[case.served - 1].arn, ENDPOINT).status == "created"
    deployer = LocalDeployer(state, s3, state_dir / "endpoints", group=GROUP, registry_approval_status=case.registry_approval_status)
    return deployer.deploy(packages[case.offered - 1].arn, ENDPOINT, force=case.force, reason=case.reason)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_both_deployers_decide_every_case_alike(server, case, monkeypatch, tmp_path):
    aws, local = on_aws(server, case, monkeypatch, tmp_path), here(case, tmp_path)
    assert (aws.status != "skipped", local.status != "skipped") == (case.deployed, case.deployed), (aws.reason, local.reason)
    group = case.registered[case.offered - 1][0]
    version = [registered[0] for registered in case.registered[: case.offered]].count(group)  # versions count per group
    assert aws.model_package_version == local.model_package_version == version
    if case.deployed:  # each deployer then says how the deployment went, after the rule's reason
        assert (aws.reason, local.reason) == (
            f"{case.because}; version {version} of {GROUP} is in service",
            f"{case.because}; version {version} is in service",
        )
    else:
        assert (aws.reason, local.reason) == (case.because, case.because)


def test_the_rule_is_pure_and_its_answers_say_why():
    served = Candidate("arn:v2", GROUP, 2, "Approved", 0.4)
    older = Candidate("arn:v1", GROUP, 1, "Approved", 0.5)
    assert decide(older, served, group=GROUP).up_to_date  # older: the endpoint is ahead, nothing to do
    assert not decide(Candidate("arn:v3", GROUP, 3, "Approved", 0.3), served, group=GROUP).up_to_date  # worse: a refusal, not "up to date"
    assert (
        decide(older, served, group=GROUP, force=True, force_reason="  ").reason
        == "version 1 is older than the served version 2: forcing it needs a reason"
    )
