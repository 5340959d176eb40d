"""`cardamage run --local`: the definition the CDK app deploys, rendered with this machine's values (or read
from a file), its inputs staged into the local S3, and run by the local engine."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from containers.common.s3 import is_s3_uri, parse_s3_uri
from pipelines.config import Config
from pipelines.definition import render_definition
from pipelines.local.capture import CaptureSettings
from pipelines.local.endpoint import LocalDeployer
from pipelines.local.engine import Engine, ExecutionResult, Reporter, parameter_values
from pipelines.local.expressions import DefinitionProblem
from pipelines.local.jobs import Images
from pipelines.local.state import ACCOUNT, REGION, State
from pipelines.local.storage import LocalS3

DEFAULT_STATE = Path(".cardamage")
IMAGES = Images(processing="cardamage/processing:local", training="cardamage/training:local", inference="cardamage/inference:local")
DEPLOY_FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:cardamage-deploy"
CHAMPION_FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:cardamage-champion"
# The account values of this machine: buckets are folders of <state>/s3, images run the repository's programs.
LOCAL_VALUES = {
    "SageMakerRoleArn": f"arn:aws:iam::{ACCOUNT}:role/cardamage-local",
    "DataBucket": "local-data",
    "ArtifactBucket": "local-artifacts",
    "KmsKeyId": "local",
    "ProcessingImageUri": IMAGES.processing,
    "TrainingImageUri": IMAGES.training,
    "InferenceImageUri": IMAGES.inference,
    "DeployFunctionArn": DEPLOY_FUNCTION,
    "ChampionFunctionArn": CHAMPION_FUNCTION,
}


@dataclass(frozen=True)
class Inputs:
    """The data a run trains on: labels files or folders (any format PrepareData reads) and the local folder
    that stands for their images' prefix (not needed for Ground Truth manifests whose source-refs are local files)."""

    manifests: list[Path]
    images: Path | None = None
    images_prefix: str | None = None


def sample_inputs(config: Config) -> Inputs:
    sample = config.data.sample
    if sample is None:
        raise DefinitionProblem(f"{config.source} has no data.sample section: pass --manifest")
    return Inputs([config.path(m) for m in sample.manifests], config.path(sample.images), sample.images_prefix)


def local_definition(config: Config, definition_file: Path | None = None) -> dict:
    """The definition to run: rendered from the configuration with this machine's values, or read from a file."""
    if definition_file is None:
        return json.loads(render_definition(config, LOCAL_VALUES))
    try:
        return json.loads(definition_file.read_text())
    except (OSError, ValueError) as exc:
        raise DefinitionProblem(f"{definition_file}: not a readable definition JSON: {exc}") from None


def stage(inputs: Inputs, s3: LocalS3, config: Config) -> dict[str, str]:
    """Put the inputs into the local S3 as a team puts them into S3, and snapshot all labelled data there as the
    trigger function does; returns the InputManifestUri (the snapshot's inputs/) and ImagesS3Prefix to run with.

    Each labels input (a file or a folder, any format) goes under labels/<name>-<content hash>/, so an
    unchanged input is not written again and keeps its time: the snapshot, and so the steps' cache keys, stay
    the same. Labels staged by earlier runs stay too: like a triggered execution, a run trains on every
    labelled input of this state folder (delete <state>/s3/local-data/labels/ to start over). Ground Truth
    manifests whose source-refs are local files are rewritten to S3 URIs, their images copied under one prefix."""
    from containers.trigger import snapshot
    from pipelines.local.storage import LocalS3Client

    labels = list(inputs.manifests)
    missing = [str(m) for m in labels if not m.exists()]
    if missing:
        raise DefinitionProblem(f"no such labels file or folder: {', '.join(missing)}")
    images_prefix = inputs.images_prefix
    files = [m for m in labels if m.is_file()]
    texts = {m: m.read_bytes() for m in files}
    if inputs.images is not None:
        if images_prefix is None:
            raise DefinitionProblem("--images needs --images-prefix: the S3 prefix that the images folder stands for")
        if not inputs.images.is_dir():
            raise DefinitionProblem(f"--images {inputs.images}: no such folder")
        s3.upload(inputs.images, images_prefix)
    else:
        rewritten, images_prefix = _stage_local_images(files, [texts[m] for m in files], s3)
        texts = dict(zip(files, rewritten, strict=True))
    bucket = LOCAL_VALUES["DataBucket"]
    where = config.snapshot_prefixes(bucket)
    folders = {}
    for source in labels:
        content = texts[source] if source in texts else _folder_digest(source).encode()
        folders[source] = f"s3://{bucket}/{where.labels}{safe_name(source.stem)}-{hashlib.sha256(content).hexdigest()[:12]}/"
    staged = StagedImages(s3)
    images_root = staged.root_with(images_prefix, list(folders.values()))  # before anything is written
    for source, folder in folders.items():
        if source in texts:
            _write_if_changed(s3.path(folder + source.name), texts[source])
        else:
            for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith(".")):
                _write_if_changed(s3.path(folder + path.relative_to(source).as_posix()), path.read_bytes())
    staged.record(images_prefix, folders.values())
    document = snapshot.take(LocalS3Client(s3), where)
    return {"InputManifestUri": document["inputs_uri"], "ImagesS3Prefix": images_root}


class StagedImages:
    """Which images prefix each labels folder staged here reads (`<state>/staged-images.json`), so that a run
    reads the images of every labelled input it trains on: ImagesS3Prefix is their common root.

    A run trains on every labelled input staged so far (a snapshot, as on AWS), but a Processing input is one S3
    prefix. Labels staged with `--images-prefix s3://b/x/` and a review batch's export with `s3://b/x/review/<batch>/`
    are read through `s3://b/x/`; prefixes in two buckets have no common root, and the run stops before any job,
    naming the earlier prefix. Labels folders deleted since (to start over) no longer count."""

    def __init__(self, s3: LocalS3):
        self.s3 = s3
        self.file = s3.root.parent / "staged-images.json"
        self.recorded = self._read()  # of the labels folders that still exist

    def _read(self) -> dict[str, str]:
        try:
            recorded = json.loads(self.file.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise DefinitionProblem(f"{self.file}: not JSON ({exc}); delete it, with {self.s3.root}/local-data/labels/, to start over") from None
        return {folder: prefix for folder, prefix in recorded.items() if self.s3.path(folder).is_dir()}

    def root_with(self, images_prefix: str, folders: list[str]) -> str:
        """The common root of `images_prefix` and the prefixes of the labels staged before (not `folders`, this run's)."""
        earlier = {folder: prefix for folder, prefix in self.recorded.items() if folder not in folders}
        root = images_prefix
        for folder, prefix in sorted(earlier.items()):
            common = _common_prefix(root, prefix)
            if common is None:
                labels = folder.rsplit("/", 2)[-2]  # <name>-<hash>
                raise DefinitionProblem(
                    f"--images-prefix {images_prefix} is in another bucket than the images of the labels already staged in "
                    f"{self.s3.root.parent} (labels/{labels}/ reads {prefix}); a run trains on every labelled "
                    f"input staged, through one images prefix. Give this data a state folder of its own (--state-dir DIR), or "
                    f"put its images beside the others (--images-prefix {prefix}<folder>/), or delete "
                    f"{self.s3.root}/local-data/labels/ to start over"
                )
            root = common
        return root

    def record(self, images_prefix: str, folders) -> None:
        recorded = self.recorded | dict.fromkeys(folders, images_prefix)
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.file.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")


def _common_prefix(first: str, second: str) -> str | None:
    """The longest folder (ending in "/") that holds both S3 prefixes; None when they are in two buckets."""
    a, b = parse_s3_uri(first), parse_s3_uri(second)
    if a.bucket != b.bucket:
        return None
    shared = []
    for x, y in zip(a.key.split("/")[:-1], b.key.split("/")[:-1], strict=False):  # the folders, not a key's last part
        if x != y:
            break
        shared.append(f"{x}/")
    return f"s3://{a.bucket}/{''.join(shared)}"


def _folder_digest(folder: Path) -> str:
    return "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(folder).as_posix()}\n" for p in sorted(folder.rglob("*")) if p.is_file()
    )


def safe_name(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)[:60] or "labels"


def _write_if_changed(target: Path, data: bytes) -> None:
    """Write the file unless it already holds `data`: its time is its upload time, which orders the snapshot."""
    if target.is_file() and target.read_bytes() == data:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _stage_local_images(manifests: list[Path], texts: list[bytes], s3: LocalS3) -> tuple[list[bytes], str]:
    """Manifests whose source-refs are local files (absolute, file://, or relative to the manifest): the
    images are copied under one S3 prefix and the lines rewritten to point there. Other lines are kept
    as they are, for the data preparation to report."""
    located: list[list[tuple[dict | None, Path | None, bytes]]] = []
    for manifest, text in zip(manifests, texts, strict=True):
        lines = []
        for raw in text.splitlines():
            record, image = _local_image(raw, manifest.parent)
            lines.append((record, image, raw))
        located.append(lines)
    images = [image for lines in located for _, image, _ in lines if image is not None]
    if not images:
        raise DefinitionProblem("the manifests' source-refs are neither local image files nor S3 URIs with --images and --images-prefix")
    root = Path(_common_folder(images))
    prefix = f"s3://local-data/images/{hashlib.sha256(str(root).encode()).hexdigest()[:12]}/"
    rewritten = []
    for lines in located:
        out = []
        for record, image, raw in lines:
            if record is None or image is None:
                out.append(raw)
                continue
            key = image.relative_to(root).as_posix()
            s3.put_file(image, prefix + key)
            out.append(json.dumps({**record, "source-ref": prefix + key}).encode())
        rewritten.append(b"\n".join(out) + b"\n")
    return rewritten, prefix


def _local_image(raw: bytes, base: Path) -> tuple[dict | None, Path | None]:
    try:
        record = json.loads(raw)
    except ValueError:
        return None, None
    reference = record.get("source-ref") if isinstance(record, dict) else None
    if not isinstance(reference, str) or is_s3_uri(reference):
        return record if isinstance(record, dict) else None, None
    path = Path(reference.removeprefix("file://"))
    path = path if path.is_absolute() else (base / path)
    return record, (path.resolve() if path.is_file() else None)


def _common_folder(paths: list[Path]) -> str:
    import os.path

    return os.path.commonpath([str(p.parent) for p in paths])


def local_deployer(state_dir: Path, config: Config | None = None) -> LocalDeployer:
    """The deployment function's stand-in, with the data capture `config` gives the function on AWS."""
    bucket = LOCAL_VALUES["ArtifactBucket"]
    captures = {endpoint: CaptureSettings.of(config, bucket, endpoint) for endpoint in config.stage_endpoints.values()} if config else {}
    group = config.model_package_group if config else None
    approval = {"registry_approval_status": config.registry.approval_status} if config else {}
    return LocalDeployer(State(state_dir), LocalS3(state_dir / "s3"), state_dir / "endpoints", captures, group, **approval)


def engine(state_dir: Path, reporter: Reporter | None = None, config: Config | None = None) -> Engine:
    state_dir = state_dir.resolve()
    deployer = local_deployer(state_dir, config)

    def invoke(event: dict) -> dict:
        """The project's two Lambda functions, against the local registry and endpoint."""
        function = event.get("FunctionArn")
        if function == DEPLOY_FUNCTION:
            return deployer.deploy(event["model_package_arn"], event["endpoint_name"]).as_dict()
        if function == CHAMPION_FUNCTION:
            return deployer.champion(event["endpoint_name"], event["challenger_model_url"], event.get("model_package_group")).outputs()
        raise DefinitionProblem(
            f"the Lambda function {function!r} is neither the deployment function ({DEPLOY_FUNCTION}) nor the champion function "
            f"({CHAMPION_FUNCTION}); only these run locally"
        )

    return Engine(state_dir, IMAGES, invoke, reporter)


def run_local(
    config: Config,
    state_dir: Path = DEFAULT_STATE,
    inputs: Inputs | None = None,
    parameters: dict[str, str] | None = None,
    definition_file: Path | None = None,
    reporter: Reporter | None = None,
    definition: dict | None = None,
) -> ExecutionResult:
    """Render (or read, or take) the definition, stage the inputs, run it; raises ExecutionFailed or DefinitionProblem."""
    runner = engine(state_dir, reporter, config)
    definition = definition if definition is not None else local_definition(config, definition_file)
    runner.validate(definition)  # before staging anything, with the parameters given
    parameter_values(definition, parameters or {})
    staged = stage(inputs or sample_inputs(config), runner.s3, config)
    return runner.run(definition, config.pipeline_name, {**staged, **(parameters or {})})
