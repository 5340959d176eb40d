"""`cardamage`: the command line of the car damage detection workflow.

Every command takes `--config PATH` (default `./pipeline.yaml`), the one file a team edits.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer
import yaml

import containers
from pipelines.config import DEFAULT_CONFIG, Config, ConfigError, load_config

PREPARE_DATA = Path(containers.__file__).resolve().parent / "processing" / "prepare_data.py"
STATE_DIR = Path(".cardamage")

app = typer.Typer(
    help="Car damage detection (EfficientDet, TF2 Object Detection API) as a SageMaker Pipelines workflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigPath = Annotated[
    Path,
    typer.Option("--config", "-c", help="The pipeline configuration file.", dir_okay=False),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cardamage {version('cardamage')}")
        raise typer.Exit()


@app.callback()
def _main(
    _version_flag: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """Car damage detection (EfficientDet, TF2 Object Detection API) as a SageMaker Pipelines workflow."""


def _load(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@app.command("config")
def show_config(
    config: ConfigPath = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of YAML.")] = False,
) -> None:
    """Validate the configuration and print it with every default filled in."""
    resolved = _load(config).model_dump(mode="json")
    typer.echo(json.dumps(resolved, indent=2) if as_json else yaml.safe_dump(resolved, sort_keys=False).rstrip())


@app.command("prepare-data")
def prepare_data(
    config: ConfigPath = DEFAULT_CONFIG,
    manifest: Annotated[
        list[Path] | None,
        typer.Option("--manifest", "-m", help="A Ground Truth output manifest, or a folder of them (repeatable). Default: the bundled sample."),
    ] = None,
    images: Annotated[Path | None, typer.Option(help="The local folder that stands for --images-prefix.", file_okay=False)] = None,
    images_prefix: Annotated[str | None, typer.Option(help="The S3 prefix the manifests' source-refs start with.")] = None,
    output: Annotated[Path, typer.Option(help="Where the TFRecords, label map and report go.", file_okay=False)] = STATE_DIR / "prepared-data",
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: data.processing.workers, else one per core).")] = None,
) -> None:
    """Prepare training data locally: the PrepareData program on a manifest (default: the bundled sample).

    It runs the same program, with the same arguments from pipeline.yaml, as the pipeline's Processing job."""
    cfg = _load(config)
    if manifest:
        if images is None or images_prefix is None:
            typer.secho("error: --manifest needs --images DIR and --images-prefix S3URI too", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        manifests, images_dir, prefix = list(manifest), images, images_prefix
    else:
        sample = cfg.data.sample
        if sample is None:
            typer.secho(f"error: {cfg.source} has no data.sample section; pass --manifest", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        manifests = [cfg.path(m) for m in sample.manifests]
        images_dir, prefix = images or cfg.path(sample.images), images_prefix or sample.images_prefix
    command = [sys.executable, str(PREPARE_DATA), *prepare_data_arguments(cfg, manifests, images_dir, prefix, output, workers)]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise typer.Exit(result.returncode)
    _print_outputs(output)


def prepare_data_arguments(
    cfg: Config, manifests: list[Path], images: Path, images_prefix: str, output: Path, workers: int | None = None
) -> list[str]:
    """The program's arguments for this configuration: what the Processing step passes, with local paths."""
    data = cfg.data
    arguments = [arg for path in manifests for arg in ("--manifest", str(path))]
    arguments += [
        "--images", str(images),
        "--images-prefix", images_prefix,
        "--output", str(output),
        "--validation-fraction", str(data.validation_fraction),
        "--seed", str(data.split_seed),
        "--shards", str(data.shards),
        "--max-invalid-fraction", str(data.max_invalid_fraction),
    ]  # fmt: skip
    if data.classes:
        arguments += ["--classes", ",".join(data.classes)]
    if data.label_attribute:
        arguments += ["--label-attribute", data.label_attribute]
    if workers or data.processing.workers:
        arguments += ["--workers", str(workers or data.processing.workers)]
    return arguments


def _print_outputs(output: Path) -> None:
    report = json.loads((output / "report.json").read_text())
    rows = [
        ("training records", output / "train"),
        ("validation records", output / "validation"),
        ("label map", output / "label_map.pbtxt"),
        ("data report", output / "report.json"),
        ("report pictures", ", ".join(str(output / name) for name in report["pictures"].values())),
    ]
    typer.echo("")
    for label, where in rows:
        typer.echo(f"  {label:<19} {where}")


if __name__ == "__main__":
    app()
