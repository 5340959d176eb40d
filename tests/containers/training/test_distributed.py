"""SageMaker's resource config made into TF_CONFIG (containers/training/distributed.py), without TensorFlow."""

from __future__ import annotations

import json

import pytest

from containers.training import distributed
from containers.training.distributed import ADDRESSES_ENV, PORT, TF_CONFIG, Cluster, ClusterError, from_environment, peer_lost


def resource_config(tmp_path, current: str, hosts: list[str]):
    path = tmp_path / "resourceconfig.json"
    path.write_text(json.dumps({"current_host": current, "hosts": hosts, "network_interface_name": "eth0"}))
    return path


def test_every_host_is_a_worker_in_sagemakers_order_with_algo_1_the_chief(tmp_path):
    hosts = [f"algo-{i}" for i in (10, 2, 1, 3, 4, 5, 6, 7, 8, 9)]  # as a plain sort would order them: algo-10 second
    cluster = from_environment(resource_config(tmp_path, "algo-3", hosts), environ={})
    assert cluster.tf_config() == {
        "cluster": {"worker": [f"algo-{i}:{PORT}" for i in range(1, 11)]},
        "task": {"type": "worker", "index": 2},
    }
    assert (cluster.host, cluster.chief, cluster.size) == ("algo-3", False, 10)
    chief = from_environment(resource_config(tmp_path, "algo-1", hosts), environ={})
    assert chief.chief and chief.tf_config()["task"] == {"type": "worker", "index": 0}


def test_one_host_or_no_resource_config_is_no_cluster(tmp_path):
    assert from_environment(resource_config(tmp_path, "algo-1", ["algo-1"]), environ={}) is None
    assert from_environment(tmp_path / "absent.json", environ={}) is None  # outside SageMaker: today's one worker


def test_the_local_engine_gives_each_host_its_address(tmp_path):
    addresses = {"algo-1": "127.0.0.1:40001", "algo-2": "127.0.0.1:40002"}
    cluster = from_environment(resource_config(tmp_path, "algo-2", ["algo-1", "algo-2"]), environ={ADDRESSES_ENV: json.dumps(addresses)})
    assert cluster.tf_config() == {"cluster": {"worker": ["127.0.0.1:40001", "127.0.0.1:40002"]}, "task": {"type": "worker", "index": 1}}
    with pytest.raises(ClusterError, match=f"^{ADDRESSES_ENV} gives no address for algo-2 \\(it names algo-1: "):
        from_environment(resource_config(tmp_path, "algo-1", ["algo-1", "algo-2"]), environ={ADDRESSES_ENV: '{"algo-1": "127.0.0.1:1"}'})
    with pytest.raises(ClusterError, match=f"^{ADDRESSES_ENV}: not a JSON object"):
        from_environment(resource_config(tmp_path, "algo-1", ["algo-1", "algo-2"]), environ={ADDRESSES_ENV: "algo-1=127.0.0.1:1"})
    with pytest.raises(ClusterError, match=r"gives no address for algo-1, algo-2 \(it names none: \["):
        from_environment(resource_config(tmp_path, "algo-1", ["algo-1", "algo-2"]), environ={ADDRESSES_ENV: '["127.0.0.1:1"]'})


def test_a_tf_config_in_the_environment_is_used_as_it_is(tmp_path):
    given = {"cluster": {"worker": ["10.0.0.5:3000", "10.0.0.6:3000"]}, "task": {"type": "worker", "index": 1}}
    environ = {TF_CONFIG: json.dumps(given)}
    cluster = from_environment(resource_config(tmp_path, "algo-1", ["algo-1", "algo-2"]), environ=environ)
    assert (cluster.addresses, cluster.index, cluster.hosts) == (("10.0.0.5:3000", "10.0.0.6:3000"), 1, ("algo-1", "algo-2"))
    distributed.configure(cluster, environ)
    assert json.loads(environ[TF_CONFIG]) == given  # not replaced by the one built from the resource config
    unnamed = from_environment(tmp_path / "absent.json", environ=environ)
    assert unnamed.hosts == ("10.0.0.5:3000", "10.0.0.6:3000")  # no resource config: the addresses name the workers
    with_chief = {"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]}, "task": {"type": "worker", "index": 0}}
    cluster = from_environment(tmp_path / "absent.json", environ={TF_CONFIG: json.dumps(with_chief)})
    assert (cluster.index, cluster.chief, cluster.hosts[0]) == (1, False, "c:1")


def test_configure_sets_tf_config_when_none_is_given(tmp_path):
    environ: dict[str, str] = {}
    cluster = from_environment(resource_config(tmp_path, "algo-2", ["algo-1", "algo-2"]), environ=environ)
    distributed.configure(cluster, environ)
    assert json.loads(environ[TF_CONFIG]) == {"cluster": {"worker": [f"algo-1:{PORT}", f"algo-2:{PORT}"]}, "task": {"type": "worker", "index": 1}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", r"not a JSON object with current_host and hosts \(Expecting value"),
        ('["algo-1"]', r"not a JSON object with current_host and hosts \('list' object has no attribute 'get'\)"),
        ('{"current_host": "algo-1", "hosts": []}', r"'hosts' must be a non-empty list of host names \(got \[\]\)"),
        ('{"current_host": "algo-1", "hosts": "algo-1"}', r"'hosts' must be a non-empty list"),
        ('{"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]}', r"'current_host' 'algo-3' is not one of the hosts \['algo-1', 'algo-2'\]"),
        ('{"current_host": "algo-1", "hosts": ["algo-1", "algo-1"]}', r"'hosts' names a host twice"),
    ],
)
def test_a_bad_resource_config_is_an_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "resourceconfig.json"
    path.write_text(text)
    with pytest.raises(ClusterError, match=f"^{path}: {message}"):
        from_environment(path, environ={})


@pytest.mark.parametrize(
    "value",
    ["{", '{"cluster": {"worker": ["a:1"]}}', '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}'],
)
def test_a_bad_tf_config_is_an_error_naming_it(tmp_path, value):
    with pytest.raises(ClusterError, match=f"^{TF_CONFIG}: "):
        from_environment(tmp_path / "absent.json", environ={TF_CONFIG: value})


CLUSTER = Cluster(("algo-1", "algo-2", "algo-3"), ("127.0.0.1:40001", "127.0.0.1:40002", "127.0.0.1:40003"), 0)

# TensorFlow 2.20's errors as the workers raised them here, when a peer was killed (SIGKILL) while they trained.
HEARTBEATS = """Graph execution error:

Detected at node CollectiveReduceV2 defined at (most recent call last):
Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks are unhealthy (stopped sending heartbeats):
/job:worker/replica:0/task:1
The tasks have crashed. Check the task logs for an earlier error, or scheduler events (e.g. preemption, eviction) to debug further.
The error could be from a previous operation. Restart your program to reset.
  [[{{node CollectiveReduceV2}}]] [Op:__inference_step_39]"""
REFUSED = """{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:1/device:CPU:0}} Collective ops is aborted by: \
failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:40001: Failed to connect to remote host: Connection refused
Additional GRPC error information from remote target /job:worker/replica:0/task:0 while calling /tensorflow.WorkerService/CompleteInstance:"""


def test_the_peer_that_went_away_is_named_from_the_task_or_the_address_in_the_error():
    assert peer_lost(CLUSTER, HEARTBEATS) == (
        "algo-2 stopped answering (seen from algo-1: Collective ops is aborted by: Error reported from /job:worker/task:1: "
        "The following tasks are unhealthy (stopped sending heartbeats):)"
    )
    seen_by_algo_2 = Cluster(CLUSTER.hosts, CLUSTER.addresses, 1)
    assert peer_lost(seen_by_algo_2, REFUSED).startswith("algo-1 stopped answering (seen from algo-2: Collective ops is aborted by: failed")


def test_a_peer_the_error_does_not_name_is_a_peer_of_the_worker_that_noticed():
    timeout = "Collective has timed out during execution."  # TF 2.20's DeadlineExceededError, CommunicationOptions' timeout
    assert peer_lost(CLUSTER, timeout) == f"a peer of algo-1 stopped answering (seen from algo-1: {timeout})"
    assert peer_lost(CLUSTER, "") == "a peer of algo-1 stopped answering (seen from algo-1)"
