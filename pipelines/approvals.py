"""Approving and rejecting a model package: the one path that `cardamage approve`/`reject` and the approvers'
console (pipelines/console/) both take, so that the page and the command line can never disagree.

The backend records the decision with the caller's identity (the STS caller ARN on AWS, user@local here) and
the comment. An approval deploys by the deployment rule (containers/deploy/deploy.py `decide`): here at once,
on AWS through the approval event's deployment function. `approve --force` stays the command line's own: after
this, it deploys the package itself (pipelines/cli/commands.py), so that neither the console nor the approvers'
policy (tests/infra/test_role_calls.py follows the calls from here) can deploy past the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.backends import Approval, BackendError

if TYPE_CHECKING:
    from containers.deploy.deploy import DeployResult
    from pipelines.backends import Backend
    from pipelines.config import Config

DECISIONS = ("Approved", "Rejected")


@dataclass(frozen=True)
class Outcome:
    """What one decision did, in the words the command line prints and the console shows."""

    change: Approval
    served_by: str  # the production endpoint, which a rejected package may still be served by
    approval_endpoint: str  # where an approval deploys (the first release stage's endpoint)
    local: bool

    @property
    def summary(self) -> str:
        change = self.change
        return f"version {change.version}: {change.previous} -> {change.status} ({change.note})"

    @property
    def deployments(self) -> list[str]:
        """One line per deployment this decision started: where, what it did, and the rule's reason."""
        return [deployment_line(self.change.deployment)] if self.change.deployment is not None else []

    @property
    def pending(self) -> str:
        """On AWS an approval deploys after this call returns: said so, since there is no result to show yet."""
        if self.change.status != "Approved" or self.change.deployment is not None:
            return ""
        return (
            f"endpoint {self.approval_endpoint}: the approval's event deploys it through the deployment function, by the same rule; "
            "`cardamage models` shows when the endpoint serves it"
        )

    @property
    def warning(self) -> str:
        """A rejected package that the endpoint still serves: rejecting it changed nothing that is served."""
        if not self.change.still_served:
            return ""
        local = " --local" if self.local else ""
        return (
            f"endpoint {self.served_by} still serves version {self.change.version}; "
            f"`cardamage deploy{local} --package N --force --reason WHY` puts another back"
        )


def deployment_line(result: DeployResult) -> str:
    """What a deployment did, and the rule's reason."""
    return f"endpoint {result.endpoint_name}: {result.status} ({result.reason})"


def decide(backend: Backend, config: Config, package: str, status: str, comment: str | None, *, local: bool) -> Outcome:
    """Approve or reject `package` (a version number or an ARN), recording who and `comment`."""
    if status not in DECISIONS:
        raise BackendError(f"a decision is one of {', '.join(DECISIONS)}, not {status!r}", 2)
    return Outcome(backend.set_approval(package, status, comment), config.endpoint_name, config.approval_endpoint, local)
