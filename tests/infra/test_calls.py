"""The role checker (tests/infra/calls.py) on small programs: which calls it finds, how it names them, and that
it fails and warns as the role tests rely on."""

from __future__ import annotations

import textwrap
import warnings

import pytest

from tests.infra.calls import Call, Need, Program, UnknownCall, UnusedGrant, actions_of, allowed_actions, check_role, implied


def program(tmp_path, **files: str) -> Program:
    for name, text in files.items():
        path = tmp_path / "fn" / f"{name}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return Program(sorted((tmp_path / "fn").glob("*.py")), root=tmp_path)


HANDLER = """
    import boto3
    import helpers

    def handler(event, context=None):
        sagemaker = boto3.client("sagemaker")
        helpers.served(sagemaker, event["name"])
        boto3.client("sns").publish(TopicArn="arn", Message="m")
        runtime = boto3.client("sagemaker-runtime")
        return Reader().read(runtime)

    class Reader:
        def read(self, runtime):
            return self._invoke(runtime)

        def _invoke(self, runtime):
            return runtime.invoke_endpoint(EndpointName="e", Body=b"")

    def never_called(s3):
        s3.delete_object(Bucket="b", Key="k")
"""
HELPERS = """
    def served(sagemaker, name):
        endpoint = sagemaker.describe_endpoint(EndpointName=name)
        for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName="g"):
            pass
        return endpoint
"""


def test_calls_are_followed_from_the_entry_through_helpers_of_sibling_modules_and_methods_but_not_beyond(tmp_path):
    calls = program(tmp_path, main=HANDLER, helpers=HELPERS).calls("fn/main.py:handler")
    assert {(call.method, call.actions, call.where.split(":")[0]) for call in calls} == {
        ("publish", ("sns:Publish",), "fn/main.py"),
        ("invoke_endpoint", ("sagemaker:InvokeEndpoint",), "fn/main.py"),  # sagemaker-runtime signs as sagemaker
        ("describe_endpoint", ("sagemaker:DescribeEndpoint",), "fn/helpers.py"),
        ("list_model_packages", ("sagemaker:ListModelPackages",), "fn/helpers.py"),
    }
    assert "delete_object" in {c.method for c in program(tmp_path, main=HANDLER, helpers=HELPERS).calls("fn/main.py")}  # the whole file


def test_s3_calls_become_the_actions_s3_authorises_them_by():
    assert actions_of("s3", "list_objects_v2") == ("s3:ListBucket",)
    assert actions_of("s3", "list_object_versions") == ("s3:ListBucketVersions",)
    assert actions_of("s3", "head_object") == ("s3:GetObject",)
    assert actions_of("s3", "copy_object", versioned=True) == ("s3:GetObject", "s3:PutObject", "s3:GetObjectVersion")
    assert actions_of("s3", "download_file") == ("s3:GetObject",)
    assert actions_of("sts", "get_caller_identity") == ()
    assert actions_of("application-autoscaling", "register_scalable_target") == ("application-autoscaling:RegisterScalableTarget",)


def test_cloudwatch_calls_become_cloudwatch_actions_though_the_service_signs_as_monitoring():
    assert actions_of("cloudwatch", "put_metric_data") == ("cloudwatch:PutMetricData",)
    assert actions_of("cloudwatch", "describe_alarms") == ("cloudwatch:DescribeAlarms",)


def test_a_copy_of_a_given_version_needs_get_object_version(tmp_path):
    source = """
        def copy(s3, version):
            source = {"Bucket": "b", "Key": "k"}
            source["VersionId"] = version
            s3.copy_object(Bucket="b", Key="c", CopySource=source)
    """
    (call,) = program(tmp_path, main=source).calls("fn/main.py:copy")
    assert "s3:GetObjectVersion" in call.actions


def test_a_method_the_client_s_service_lacks_names_its_file_and_line(tmp_path):
    source = """
        def handler(s3):
            s3.describe_endpoint(EndpointName="e")
    """
    with pytest.raises(UnknownCall, match=r"fn/main\.py:3: s3 has no method 'describe_endpoint'"):
        program(tmp_path, main=source).calls("fn/main.py:handler")


def test_a_call_the_role_does_not_allow_fails_naming_the_call_the_file_and_the_role():
    call = Call("sagemaker", "delete_endpoint", ("sagemaker:DeleteEndpoint",), "fn/main.py:12")
    with pytest.raises(AssertionError, match=r"fn/main\.py:12: delete_endpoint needs sagemaker:DeleteEndpoint, which DeployRole does not allow"):
        check_role("DeployRole", {"sagemaker:Describe*"}, [call])
    need = Need("kms:Decrypt", "Some page, https://docs.aws.amazon.com/x", "reading")
    with pytest.raises(AssertionError, match=r"AWS needs kms:Decrypt for reading \(Some page"):
        check_role("DeployRole", {"sagemaker:Describe*"}, [], [need])


def test_an_allowed_action_nothing_needs_is_an_unused_grant_warning_and_wildcards_match_case_insensitively():
    call = Call("sagemaker", "describe_endpoint", ("sagemaker:DescribeEndpoint",), "fn/main.py:3")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unused = check_role("Role", {"SageMaker:describe*", "sagemaker:DeleteEndpoint"}, [call])
    assert unused == ["sagemaker:DeleteEndpoint"]
    assert [str(w.message) for w in caught if issubclass(w.category, UnusedGrant)] == [
        "Role allows sagemaker:DeleteEndpoint, which no code it runs calls and AWS does not document as used for it"
    ]


def test_implied_needs_are_followed_to_their_own_needs():
    first, second = Need("b:Two", "page", "one"), Need("c:Three", "page", "two")
    assert implied(["a:One"], {"a:*": [first], "b:Two": [second]}) == [first, second]


def test_a_policy_that_allows_with_not_action_is_refused():
    with pytest.raises(ValueError, match="NotAction"):
        allowed_actions([{"Sid": "All", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}])
