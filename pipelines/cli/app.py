"""The `cardamage` application: the shared options, where each command runs, and one way to fail.

Every command is registered with `@command(Side...)`, which gives it the shared options of its side and
hands it an `Invocation`: the loaded configuration and, for a command that runs on AWS and here, the one
backend its options choose (`--local` and `--state-dir`: this machine; else AWS, with `--region` and
`--endpoint-url`). The shared options are declared once, here, and added to each command's signature
(Typer reads the signature), so no command repeats them.

Problems are one line on stderr with an exit status: 2 for a wrong invocation or setup (an invalid value,
no credentials, no region, no local state yet), 1 for what was found (no such pipeline, package or
execution; a failed execution), 124 when waiting timed out, 130 when stopped by Ctrl-C.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from pipelines.backends import Backend, BackendError
from pipelines.config import DEFAULT_CONFIG, Config, ConfigError, load_config

if TYPE_CHECKING:
    import click

    from pipelines.aws import Aws

STATE_DIR = Path(".cardamage")


class Side(Enum):
    """Where a command runs, which decides its shared options and its section of `cardamage --help`."""

    BOTH = "On AWS, or on this machine with --local"
    AWS = "On AWS only"
    LOCAL = "On this machine only (the local engine's state directory)"
    OFFLINE = "Offline (no AWS call, no local state)"


SIDES: dict[str, Side] = {}  # command name -> side, in the order commands are registered


class _Group(TyperGroup):
    """`cardamage --help` lists the commands under their side."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        width = max((len(name) for name in self.commands), default=0)
        for side in Side:
            rows = [(name, self.commands[name].get_short_help_str(formatter.width - width - 6)) for name in SIDES if SIDES[name] is side]
            if rows:
                with formatter.section(side.value):
                    formatter.write_dl(rows)


class _Command(TyperCommand):
    """A command's help shows an argument by its metavariable, as Click shows options (`IMAGE`, where Typer
    writes `{IMAGE}` in the usage line and `IMAGE <file>` in the list)."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        arguments = [param for param in self.get_params(ctx) if param.param_type_name == "argument"]
        return [self.options_metavar or "", *(param.metavar or (param.name or "").upper() for param in arguments)]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        arguments = [(param.metavar or "", getattr(param, "help", "") or "") for param in self.get_params(ctx) if param.param_type_name == "argument"]
        options = [record for param in self.get_params(ctx) if param.param_type_name == "option" and (record := param.get_help_record(ctx))]
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


app = typer.Typer(
    cls=_Group,
    help="Car damage detection (EfficientDet, TF2 Object Detection API) as a SageMaker Pipelines workflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: every option with its metavariable, no type names
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cardamage {version('cardamage')}")
        raise typer.Exit()


@app.callback()
def _main(
    _version_flag: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """Car damage detection (EfficientDet, TF2 Object Detection API) as a SageMaker Pipelines workflow."""


# The shared options, declared once.
ConfigOption = Annotated[Path, typer.Option("--config", "-c", metavar="FILE", dir_okay=False, help="The pipeline configuration file.")]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        metavar="NAME",
        help="A profile of pipeline.yaml to apply; `none`: the file as it is. Default: `local` on this machine, where defined.",
    ),
]
LocalOption = Annotated[bool, typer.Option("--local", help="Work on this machine (the local engine's state directory) instead of AWS.")]
StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        metavar="DIR",
        file_okay=False,
        help=f"The local engine's state: S3 mirror, executions, registry, endpoints. Default: {STATE_DIR}.",
    ),
]
RegionOption = Annotated[
    str | None,
    typer.Option("--region", metavar="REGION", help="The AWS region (default: aws.region in the config, else AWS_DEFAULT_REGION or the profile's)."),
]
EndpointUrlOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        metavar="URL",
        help="Send every AWS request to this URL (moto, LocalStack, a VPC endpoint); one on this machine is signed with dummy credentials.",
    ),
]
# On a command with one side, --local is hidden: accepted where it changes nothing (a local command), refused
# with a pointer where it cannot work (an AWS command).
HiddenLocalOption = Annotated[bool, typer.Option("--local", hidden=True)]


def _parameter(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


_SHARED = {
    Side.BOTH: [
        _parameter("local", LocalOption, False),
        _parameter("state_dir", StateDirOption, None),
        _parameter("region", RegionOption, None),
        _parameter("endpoint_url", EndpointUrlOption, None),
    ],
    Side.AWS: [
        _parameter("region", RegionOption, None),
        _parameter("endpoint_url", EndpointUrlOption, None),
        _parameter("local", HiddenLocalOption, False),
    ],
    Side.LOCAL: [_parameter("state_dir", StateDirOption, None), _parameter("local", HiddenLocalOption, False)],
    Side.OFFLINE: [],
}
_COMMON = [_parameter("config", ConfigOption, DEFAULT_CONFIG), _parameter("profile", ProfileOption, None)]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@dataclass
class Invocation:
    """One command's shared options, resolved: the configuration, and where the command works."""

    side: Side
    config_path: Path
    profile: str | None
    local: bool = False
    state_dir: Path = STATE_DIR
    region: str | None = None
    endpoint_url: str | None = None

    @property
    def is_local(self) -> bool:
        return self.side is Side.LOCAL or self.local

    @cached_property
    def config(self) -> Config:
        """pipeline.yaml with the profile asked for; on this machine, the `local` profile unless another is named."""
        if self.profile == "none":
            return load_config(self.config_path)
        if self.profile is None and self.is_local:
            base = load_config(self.config_path)
            return load_config(self.config_path, "local") if "local" in base.profiles else base
        return load_config(self.config_path, self.profile)

    @cached_property
    def account_config(self) -> Config:
        """On AWS, `config` with each unset `aws.*` value read from the deployed stack's outputs (pipeline.yaml's
        values win); here, `config`."""
        if self.is_local:
            return self.config
        from pipelines import aws

        return aws.with_stack_values(self.aws(), self.config, warn=_note)

    def backend(self) -> Backend:
        """The one backend the shared options choose. (The backends are imported here, when a command asks,
        so that `--help` and the offline commands do not load boto3.)"""
        if self.is_local:
            from pipelines.backends.local import LocalBackend

            return LocalBackend(self.config, self.state_dir)
        from pipelines.backends.aws import AwsBackend

        return AwsBackend(self.config, region=self.region, endpoint_url=self.endpoint_url, warn=_note)

    def aws(self) -> Aws:
        """A boto3 session for the AWS-only commands, from the region and endpoint options."""
        from pipelines import aws

        return aws.connect(self.region or self.config.aws.region, self.endpoint_url)


def _note(message: str) -> None:
    typer.echo(f"note: {message}", err=True)


def _invocation(name: str, side: Side, local_hint: str, values: dict[str, Any]) -> Invocation:
    """The shared options of one call, taken out of `values` and checked: an option of the other side is a
    mistake, not a no-op."""
    shared = {parameter.name: values.pop(parameter.name) for parameter in [*_COMMON, *_SHARED[side]]}
    local, state_dir = shared.get("local", False), shared.get("state_dir")
    region, endpoint_url = shared.get("region"), shared.get("endpoint_url")
    if side is Side.AWS and local:
        fail(f"`cardamage {name}` runs on AWS only; {local_hint}", 2)
    if side is Side.BOTH and local and (region or endpoint_url):
        fail("--region and --endpoint-url are for AWS; with --local, drop them", 2)
    if side is Side.BOTH and not local and state_dir is not None:
        fail("--state-dir is the local engine's: add --local to work on this machine", 2)
    return Invocation(side, shared["config"], shared["profile"], local, state_dir or STATE_DIR, region, endpoint_url)


def command(side: Side, name: str | None = None, *, local_hint: str = "") -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a command `(invocation, **its own options)` with the shared options of its side. Its help is
    its docstring, ending with where it runs; `local_hint` says what to use on this machine instead (AWS)."""

    def register(function: Callable[..., None]) -> Callable[..., None]:
        command_name = name or function.__name__.replace("_", "-")
        own = list(inspect.signature(function, eval_str=True).parameters.values())[1:]
        shared = _COMMON + _SHARED[side]

        @functools.wraps(function)
        def run(**values: Any) -> None:
            invocation = _invocation(command_name, side, local_hint, values)
            with errors():
                function(invocation, **values)

        run.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
        run.__annotations__ = {parameter.name: parameter.annotation for parameter in [*own, *shared]}
        doc = inspect.cleandoc(function.__doc__ or "")
        app.command(command_name, cls=_Command, help=f"{doc}\n\n{side.value}.")(run)
        SIDES[command_name] = side
        return function

    return register


_CREDENTIAL_CODES = {
    "ExpiredToken": "the AWS credentials have expired: refresh them (aws sso login, or new temporary keys)",
    "ExpiredTokenException": "the AWS credentials have expired: refresh them (aws sso login, or new temporary keys)",
    "InvalidClientTokenId": "the AWS access key is not valid: check AWS_PROFILE / AWS_ACCESS_KEY_ID",
    "UnrecognizedClientException": "the AWS access key is not valid: check AWS_PROFILE / AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "the AWS secret key does not match the access key",
}


@contextmanager
def errors() -> Iterator[None]:
    """What goes wrong, as one line on stderr with an exit status instead of a traceback."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        ParamValidationError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    try:
        yield
    except ConfigError as exc:
        fail(str(exc), 2)
    except BackendError as exc:
        fail(str(exc), exc.exit_code)
    except (NoCredentialsError, PartialCredentialsError):
        fail("no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws sso login`", 2)
    except NoRegionError:
        fail("no AWS region: pass --region, set aws.region in pipeline.yaml, or set AWS_DEFAULT_REGION", 2)
    except ProfileNotFound as exc:
        fail(f"{exc}: check AWS_PROFILE", 2)
    except ParamValidationError as exc:
        fail(" ".join(str(exc).split()), 2)
    except EndpointConnectionError as exc:
        fail(f"cannot reach {exc.kwargs.get('endpoint_url')}: check the network, --region and --endpoint-url", 1)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        hint = _CREDENTIAL_CODES.get(error.get("Code", ""))
        fail(hint or f"{exc.operation_name}: {error.get('Code')}: {error.get('Message')}", 2 if hint else 1)
    except BotoCoreError as exc:
        fail(str(exc), 1)


def pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """NAME=VALUE options as a mapping (a later NAME wins)."""
    found = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"{option} expects NAME=VALUE (got {item!r})", 2)
        found[key.strip()] = value
    return found
