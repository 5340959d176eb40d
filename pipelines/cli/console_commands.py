"""`cardamage console`: the approvers' web page (pipelines/console/) on 127.0.0.1, over the backend the shared
options choose: on AWS with the approver's own credentials, here (--local) with the local state."""

from __future__ import annotations

import signal

import typer

from pipelines.backends import BackendError
from pipelines.cli.app import Invocation, Side, command
from pipelines.cli.options import option
from pipelines.console import DEFAULT_PORT


@command(Side.BOTH, "console")
def console_command(
    cli: Invocation,
    port: option(int, "--port", metavar="PORT", min=0, max=65535, help="The port to listen on (0: any free one).") = DEFAULT_PORT,
    host: option(
        str | None, "--host", metavar="HOST", help="Listen on this address instead of 127.0.0.1 (warned: whoever reaches it may approve as you)."
    ) = None,
) -> None:
    """Serve the approvers' console, a web page: the packages with their mAP, the champion's lead, the data they
    were trained on and their approval notes, what each endpoint serves, and one page per package with its
    report and Approve and Reject buttons (a comment required). A decision takes the same path as `cardamage
    approve`/`reject` and shows what it did: deployed, or the deployment rule's reason. --force stays with the
    command line.

    It listens on 127.0.0.1 and answers only requests that name that address; a change needs the page's token
    and Origin. On AWS it acts with your credentials, and the approval note records your identity. Ctrl-C
    stops it."""
    from pipelines.console.app import create_app, site
    from pipelines.console.server import listen, server

    wanted = site(host, port)
    backend = cli.backend()
    if wanted.warning:
        typer.secho(f"warning: {wanted.warning}", fg=typer.colors.YELLOW, err=True)
    try:
        sock, bound = listen(wanted)
    except OSError as exc:
        raise BackendError(f"cannot listen on {wanted.host}:{port}: {exc.strerror or exc} (pass --port)", 2) from None
    running = server(create_app(backend, cli.config, bound, local=cli.is_local))
    typer.echo(f"the approvers' console of {cli.config.model_package_group} ({backend.where}): open {bound.url}  (Ctrl-C stops)")
    # Ctrl-C and SIGTERM stop it cleanly, even when started from a process that ignores SIGINT (which a child
    # inherits); uvicorn shuts down, then raises the signal again, which ends here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with sock:
            running.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    typer.echo("stopped")
