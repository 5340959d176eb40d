"""Several training instances as one TensorFlow cluster: SageMaker's resource config made into the TF_CONFIG that
MultiWorkerMirroredStrategy reads.

SageMaker writes /opt/ml/input/config/resourceconfig.json into every container of a training job: `current_host`
(this container's name) and `hosts` (every container's name, algo-1 ... algo-N): "Distributed Training
Configuration" in "How Amazon SageMaker AI Provides Training Information" (SageMaker Developer Guide). The SageMaker
Python SDK 3's ModelTrainer has no TensorFlow multi-worker distribution (sagemaker.train.distributed in
sagemaker-train 1.27.0 offers SMP, Torchrun and MPI only), so the training program builds TF_CONFIG itself: every
host is a worker, in the order SageMaker numbers them, so algo-1 is task 0, the chief. A TF_CONFIG already in the
environment is used as it is. With one host there is no cluster and the program trains as it always has.

This module imports no TensorFlow: the local engine and the tests use it cheaply.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RESOURCE_CONFIG = Path("/opt/ml/input/config/resourceconfig.json")
TF_CONFIG = "TF_CONFIG"
# The port every worker listens on, on AWS. Each instance has an address of its own on the job's network, so one
# fixed port serves every host; 2222 is the one SageMaker's own TensorFlow training toolkit gives its workers
# (aws/sagemaker-tensorflow-training-toolkit, training.py `_build_tf_config`), and nothing else in the image uses it.
# The job's network isolation allows it: "No inbound or outbound network calls can be made, except for calls between
# peers within a training cluster for distributed training" (CreateTrainingJob, EnableNetworkIsolation).
PORT = 2222
# Set by the local engine, whose workers share 127.0.0.1: a JSON object of host -> "127.0.0.1:<port it picked>".
ADDRESSES_ENV = "TRAINING_WORKER_ADDRESSES"
# How long a collective (the gradients' all-reduce) may wait for a peer that is alive but stuck: then TensorFlow
# raises DeadlineExceededError ("Collective has timed out during execution."). A peer that dies is noticed sooner:
# TensorFlow's coordination service, which MultiWorkerMirroredStrategy starts in TF 2.20, aborts every collective
# once a task stops sending heartbeats (within 10 s here), and a closed connection fails at once. Ten minutes is
# far above the seconds by which workers drift apart (tracing the first step, a checkpoint save) and far below a
# job's MaxRuntime. TensorFlow runs a timer thread per collective; a step makes a handful (the gradients go as one
# packed all-reduce in a tf.function).
COLLECTIVE_TIMEOUT = 600
# How long the other workers wait for the chief's export before they all leave together. A chief that dies is
# noticed through the heartbeats; this only bounds a chief alive but stuck, which MaxRuntimeInSeconds ends anyway.
EXPORT_WAIT = 24 * 3600

_TASK = re.compile(r"/job:(chief|worker)/(?:replica:\d+/)?task:(\d+)")
_NODE = re.compile(r"\{\{[^{}]*\}\}")  # the graph node an error was raised in: "{{function_node ...}}"
# The line of a TensorFlow error that says what happened to the peer (the others are a traceback of graph nodes).
_REASON = re.compile(r"aborted by|unhealthy|timed out|failed to connect|Failed to send RPC|Socket closed|Connection refused|leader task")


class ClusterError(ValueError):
    """The resource config or the environment does not describe a usable cluster; the message names the source."""


@dataclass(frozen=True)
class Cluster:
    """The workers of one training job, in task order (the chief first), and which one this process is."""

    hosts: tuple[str, ...]
    addresses: tuple[str, ...]  # host:port of each worker
    index: int
    has_chief_job: bool = False  # a given TF_CONFIG with a "chief" job: that task is index 0, workers follow

    @property
    def host(self) -> str:
        return self.hosts[self.index]

    @property
    def chief(self) -> bool:
        return self.index == 0

    @property
    def size(self) -> int:
        return len(self.hosts)

    def tf_config(self) -> dict:
        return {"cluster": {"worker": list(self.addresses)}, "task": {"type": "worker", "index": self.index}}

    def describe(self) -> str:
        return f"{self.size} workers ({', '.join(self.hosts)}; this is {self.host}, the chief is {self.hosts[0]})"

    def task_position(self, job: str, task: int) -> int:
        """A TensorFlow task (`/job:worker/task:1`) as an index into `hosts`."""
        return task if job == "chief" or not self.has_chief_job else task + 1


def sagemaker_order(hosts: Sequence[str]) -> list[str]:
    """Hosts as SageMaker numbers them (algo-1, algo-2, ..., algo-10): every worker computes the same order, and
    algo-1, the chief, comes first."""

    def key(host: str) -> tuple[str, int, str]:
        prefix, _, number = host.rpartition("-")
        return (prefix, int(number), host) if number.isdigit() else (host, -1, host)

    return sorted(hosts, key=key)


def read_resource_config(path: Path) -> tuple[str, list[str]]:
    """`current_host` and `hosts` of a resource config file, checked."""
    try:
        document = json.loads(path.read_text())
        hosts, current = document.get("hosts"), document.get("current_host")
    except (OSError, ValueError, AttributeError) as exc:
        raise ClusterError(f"{path}: not a JSON object with current_host and hosts ({exc})") from None
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise ClusterError(f"{path}: 'hosts' must be a non-empty list of host names (got {hosts!r})")
    if len(set(hosts)) != len(hosts):
        raise ClusterError(f"{path}: 'hosts' names a host twice: {hosts}")
    if current not in hosts:
        raise ClusterError(f"{path}: 'current_host' {current!r} is not one of the hosts {hosts}")
    return current, hosts


def from_environment(resource_config: Path = RESOURCE_CONFIG, environ: Mapping[str, str] = os.environ) -> Cluster | None:
    """This job's cluster, or None when one worker trains (one host, or no resource config: a run outside SageMaker)."""
    if environ.get(TF_CONFIG):
        return _given(environ[TF_CONFIG], resource_config)
    if not resource_config.is_file():
        return None
    current, hosts = read_resource_config(resource_config)
    if len(hosts) == 1:
        return None
    ordered = sagemaker_order(hosts)
    return Cluster(tuple(ordered), tuple(_addresses(ordered, environ)), ordered.index(current))


def _addresses(hosts: list[str], environ: Mapping[str, str]) -> list[str]:
    given = environ.get(ADDRESSES_ENV)
    if not given:
        return [f"{host}:{PORT}" for host in hosts]
    try:
        addresses = json.loads(given)
    except ValueError as exc:
        raise ClusterError(f"{ADDRESSES_ENV}: not a JSON object of host -> address: {exc}") from None
    named = addresses if isinstance(addresses, dict) else {}
    missing = [host for host in hosts if not isinstance(named.get(host), str)]
    if missing:
        raise ClusterError(f"{ADDRESSES_ENV} gives no address for {', '.join(missing)} (it names {', '.join(named) or 'none'}: {given})")
    return [named[host] for host in hosts]


def _given(text: str, resource_config: Path) -> Cluster | None:
    """A TF_CONFIG set by whoever started the program: used as it is, its tasks named after SageMaker's hosts
    when the resource config lists as many, else after their addresses."""
    try:
        config = json.loads(text)
        jobs, task = config["cluster"], config["task"]
        chiefs, workers = list(jobs.get("chief", [])), list(jobs.get("worker", []))
        kind, number = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ClusterError(f"{TF_CONFIG}: expected {{'cluster': {{'worker': [...]}}, 'task': {{'type': ..., 'index': ...}}}}: {exc!r}") from None
    addresses = chiefs + workers
    if kind not in ("chief", "worker") or not 0 <= number < len(chiefs if kind == "chief" else workers):
        raise ClusterError(f"{TF_CONFIG}: task {kind} {number} is not in its cluster {jobs}")
    if len(addresses) < 2:
        return None
    names = list(addresses)
    if resource_config.is_file():
        _, hosts = read_resource_config(resource_config)
        if len(hosts) == len(addresses):
            names = sagemaker_order(hosts)
    index = number if kind == "chief" or not chiefs else number + 1  # as Cluster.task_position counts
    return Cluster(tuple(names), tuple(addresses), index, has_chief_job=bool(chiefs))


def configure(cluster: Cluster, environ: MutableMapping[str, str] = os.environ) -> None:
    """TF_CONFIG for MultiWorkerMirroredStrategy, unless one is set already; before the strategy is created."""
    environ.setdefault(TF_CONFIG, json.dumps(cluster.tf_config()))


def peer_lost(cluster: Cluster, message: str) -> str:
    """A one-line reason for TensorFlow's error when a collective or the final wait failed: the peer that went
    away when the message names it (a task or an address), else the worker that noticed."""
    found = [cluster.task_position(job, int(task)) for job, task in _TASK.findall(message)]
    found += [position for position, address in enumerate(cluster.addresses) if address in message]
    peers = [cluster.hosts[p] for p in dict.fromkeys(found) if p != cluster.index and 0 <= p < cluster.size]
    who = f"{', '.join(peers)} stopped answering" if peers else f"a peer of {cluster.host} stopped answering"
    lines = [_NODE.sub("", line).strip() for line in message.splitlines() if _NODE.sub("", line).strip()]
    reason = next((line for line in lines if _REASON.search(line)), lines[0] if lines else "")
    return f"{who} (seen from {cluster.host}: {reason[:300]})" if reason else f"{who} (seen from {cluster.host})"
