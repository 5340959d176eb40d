"""`cardamage report`: a model package's report page (report.html, written by Evaluate beside its evaluation.json:
the metrics against the champion, the photos where the two differ most, the data and the training settings),
fetched where the package's metadata (`ReportUri`) says it is: S3 on AWS, the state folder's S3 mirror here."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.cli.app import Invocation, Side, command
from pipelines.cli.commands import PackageArgument
from pipelines.cli.options import option
from pipelines.local.storage import write_private


@command(Side.BOTH)
def report(
    cli: Invocation,
    package: PackageArgument,
    output: option(
        Path | None, "--output", "-o", metavar="FILE", dir_okay=False, help="Where to write the page (default: report-v<version>.html)."
    ) = None,
) -> None:
    """Fetch a model package's report page, one self-contained HTML file to open in a browser: its metrics against
    the champion's with their intervals, the validation photos where the two models differ most, the data it was
    trained on, its training settings and drift baselines. The file is readable by you alone: it shows customers'
    photos. Exit 1 for a package registered before packages carried a report."""
    page = cli.backend().report(package)
    target = output or Path(f"report-v{page.version}.html")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_private(target, page.body)
    typer.echo(f"version {page.version}: {page.uri} -> {target} ({len(page.body) / 1024:.0f} KiB)")
