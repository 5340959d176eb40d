"""Labels in: `import-labels` (offline), and the options the commands that read labels share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from containers.processing.formats import AUTO, FORMATS
from pipelines.cli.app import Invocation, Side, command, fail, pairs
from pipelines.cli.options import ClassMapOption, ImagesOption, LabelFormatOption, RequiredImagesPrefixOption, option
from pipelines.cli.output import console, table


def label_choices(cli: Invocation, label_format: str | None, class_map: list[str] | None) -> tuple[str, dict[str, str]]:
    """The format and class map to use: the options over pipeline.yaml's data section."""
    data = cli.config.data
    chosen = label_format or data.label_format
    if chosen not in (AUTO, *FORMATS):
        fail(f"--format must be one of {', '.join((AUTO, *FORMATS))} (got {chosen!r})", 2)
    return chosen, {**data.class_map, **pairs(class_map, "--class-map")}


@command(Side.OFFLINE, "import-labels")
def import_labels_command(
    cli: Invocation,
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT...", help="Label files or folders, in any format PrepareData reads.")],
    images_prefix: RequiredImagesPrefixOption,
    output: option(Path, "--output", "-o", metavar="FILE", dir_okay=False, help="The manifest to write."),
    label_format: LabelFormatOption = None,
    class_map: ClassMapOption = None,
    images: ImagesOption = None,
) -> None:
    """Write a Ground Truth augmented manifest from labels in any format: to inspect them, or as the input of a
    Ground Truth adjustment job. Same readers and rules as PrepareData; the refusals go to FILE.report.json.
    With --images, each labelling is checked against its image's size (YOLO and VIA record none: they need it)."""
    from containers.common.s3 import is_s3_uri
    from containers.processing.import_labels import ImportOptions, import_labels
    from containers.processing.labelling import InputError

    if not is_s3_uri(images_prefix):
        fail(f"--images-prefix must be an s3:// URI (got {images_prefix!r})", 2)
    chosen_format, mapping = label_choices(cli, label_format, class_map)
    data = cli.config.data
    options = ImportOptions(
        inputs=inputs,
        images_prefix=images_prefix,
        output=output,
        label_format=chosen_format,
        classes=data.classes,
        class_map=mapping,
        images=images,
        via_attribute=data.via_attribute,
    )
    try:
        report = import_labels(options)
    except InputError as exc:
        fail(str(exc), 2)
    listing = table("input", "format", "records")
    for entry in report["inputs"]:
        listing.add_row(entry["path"], entry["format"], str(entry["records"]))
    console().print(listing)
    for entry in report["quarantined"]:
        where = f"line {entry['line']}" if "line" in entry else entry["record"]
        typer.echo(f"quarantined: {entry['manifest']} ({where}): {entry['reason']}", err=True)
    for name, count in report["dropped_boxes"].items():
        typer.echo(f"warning: {count} box(es) of class {name!r} dropped: not one of data.classes and not mapped (--class-map)", err=True)
    typer.echo(
        f"{report['images_written']} image(s) written to {output} from {report['records_read']} record(s): "
        f"{len(report['quarantined'])} quarantined, {len(report['merged'])} merged (report: {output}.report.json)"
    )
    if not report["images_written"]:
        raise typer.Exit(1)
