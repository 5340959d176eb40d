"""One deployment rule, two deployers: every case of the table goes through the deployment function's code
against moto (AWS) and through the local deployer, and both must decide alike (containers/deploy/deploy.py
`decide`). moto lacks UpdateEndpoint, which is stubbed (tests/aws_fakes.py); the endpoint's tags, which say
what it serves, are moto's."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass

import pytest

from containers.deploy.deploy import Candidate, DeploySettings, decide, deploy_package
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
    served: int | None  # the version deployed first (by the rule, unforced), or none
    offered: int  # the version offered (1-based index into `registered`)
    force: bool = False
    reason: str = ""
    deployed: bool = False  # what both deployers must do
    because: str = ""  # a fragment of the reason both must give


A, P, R = "Approved", "PendingManualApproval", "Rejected"
CASES = [
    Case("first package", ((GROUP, A, 0.3),), None, 1, deployed=True, because="nothing is served yet"),
    Case("newer and better", ((GROUP, A, 0.3), (GROUP, A, 0.4)), 1, 2, deployed=True, because="replaces the served version 1"),
    Case("newer, mAP unknown", ((GROUP, A, 0.3), (GROUP, A, None)), 1, 2, deployed=True, because="replaces the served version 1"),
    Case("the served one again", ((GROUP, A, 0.3),), 1, 1, because="already serves version 1"),
    Case("the served one, forced", ((GROUP, A, 0.3),), 1, 1, force=True, reason="again", because="already serves version 1"),
    Case("older", ((GROUP, A, 0.3), (GROUP, A, 0.4)), 2, 1, because="version 1 is older than the served version 2"),
    Case("older, forced without reason", ((GROUP, A, 0.3), (GROUP, A, 0.4)), 2, 1, force=True, because="forcing it needs a reason"),
    Case("older, forced with reason", ((GROUP, A, 0.3), (GROUP, A, 0.4)), 2, 1, force=True, reason="v2 misses scratches", deployed=True,
         because="reason: v2 misses scratches"),
    Case("newer but worse", ((GROUP, A, 0.4), (GROUP, A, 0.3)), 1, 2, because="mAP 0.3000 is below the served version 1's 0.4000"),
    Case("newer but worse, forced", ((GROUP, A, 0.4), (GROUP, A, 0.3)), 1, 2, force=True, reason="needs the new class", deployed=True,
         because="forced: version 2's mAP"),
    Case("pending", ((GROUP, A, 0.3), (GROUP, P, 0.5)), 1, 2, because="version 2 is PendingManualApproval, not Approved"),
    Case("rejected, forced", ((GROUP, A, 0.3), (GROUP, R, 0.5)), 1, 2, force=True, reason="please", because="version 2 is Rejected, not Approved"),
    Case("another group", ((GROUP, A, 0.3), (OTHER, A, 0.9)), 1, 2, force=True, reason="please",
         because=f"the package belongs to group {OTHER!r}; this endpoint serves group {GROUP!r}"),
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


def on_aws(server, case: Case, monkeypatch, tmp_path) -> tuple[bool, str]:
    server.reset()
    isolate_aws(monkeypatch, tmp_path)
    sagemaker, autoscaling = client("sagemaker", server.url), client("application-autoscaling", server.url)
    stub_operation(
        sagemaker.meta.events, "sagemaker", "UpdateEndpoint", lambda params: {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/x"}
    )
    for group in (GROUP, OTHER):
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    arns = [register(sagemaker, status, group, map_value) for group, status, map_value in case.registered]
    settings = DeploySettings(endpoint_name=ENDPOINT, role_arn=ROLE, model_package_group=GROUP, data_capture_percent=0)
    if case.served is not None:
        assert deploy_package(sagemaker, autoscaling, settings, arns[case.served - 1]).status == "created"
    result = deploy_package(sagemaker, autoscaling, settings, arns[case.offered - 1], force=case.force, reason=case.reason)
    return result.status != "skipped", result.reason


def here(case: Case, tmp_path) -> tuple[bool, str]:
    state_dir = tmp_path / "local"
    state, s3 = State(state_dir), LocalS3(state_dir / "s3")
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(model_archive())
    s3.put_file(archive, "s3://local-artifacts/model.tar.gz")
    packages = [
        state.register(group, status, "s3://local-artifacts/model.tar.gz", None, None, map_value, {}, None)
        for group, status, map_value in case.registered
    ]
    deployer = LocalDeployer(state, s3, state_dir / "endpoints", group=GROUP)
    if case.served is not None:
        assert deployer.deploy(packages[case.served - 1].arn, ENDPOINT).status == "created"
    result = deployer.deploy(packages[case.offered - 1].arn, ENDPOINT, force=case.force, reason=case.reason)
    return result.status != "skipped", result.reason


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_both_deployers_decide_every_case_alike(server, case, monkeypatch, tmp_path):
    aws_deployed, aws_reason = on_aws(server, case, monkeypatch, tmp_path)
    local_deployed, local_reason = here(case, tmp_path)
    assert aws_deployed == local_deployed == case.deployed, (aws_reason, local_reason)
    assert case.because in aws_reason and case.because in local_reason, (aws_reason, local_reason)


def test_the_rule_is_pure_and_its_answers_say_why():
    served = Candidate("arn:v2", GROUP, 2, "Approved", 0.4)
    older = Candidate("arn:v1", GROUP, 1, "Approved", 0.5)
    assert decide(older, served, group=GROUP).up_to_date  # older: the endpoint is ahead, nothing to do
    assert not decide(Candidate("arn:v3", GROUP, 3, "Approved", 0.3), served, group=GROUP).up_to_date  # worse: a refusal, not "up to date"
    assert decide(older, served, group=GROUP, force=True, force_reason="  ").reason.endswith("forcing it needs a reason")
