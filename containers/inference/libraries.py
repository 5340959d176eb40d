"""The handler's libraries inside the model: `code/lib/`, unpacked from hash-checked wheels.

SageMaker's TensorFlow Serving container runs `pip install -r code/requirements.txt` at every start unless
`code/lib/` exists, in which case it puts `code/lib` on the handler's PYTHONPATH and installs nothing
(aws/deep-learning-containers, tensorflow/inference/docker/build_artifacts/sagemaker/serve.py,
`_setup_gunicorn`). An install at start fails under network isolation or in a subnet without NAT, and would
put unhashed packages from the internet into a production endpoint; so a model carries `code/lib` and no
`code/requirements.txt`.

The wheels are those of `requirements.txt` here (hash-pinned, for the serving image's Python), downloaded at
the training image's build (the training job itself has no network) or by `make setup` on this machine,
and found through `SERVING_WHEELS`. Every wheel's sha256 is checked against the pins before it is unpacked.

Hand-written rather than `pip install --target`: pip must then be told the serving Python and platform
again, and a wheel of this kind (no `.data/` folder, refused otherwise) unpacks as a plain zip archive.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from containers.common import archives

SERVING_WHEELS_ENV = "SERVING_WHEELS"
IMAGE_WHEELS = Path("/opt/program/serving-wheels")  # where the training image's Dockerfile puts them
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
LIB = "lib"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


class BundleError(Exception):
    """The wheels cannot make code/lib; the message names the file and what was expected."""


@dataclass(frozen=True)
class Pin:
    name: str  # normalised (PEP 503)
    version: str
    hashes: frozenset[str]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = REQUIREMENTS) -> dict[str, Pin]:
    """`name==version` lines with their `--hash=sha256:` continuations, as `uv pip compile` writes them."""
    pins: dict[str, Pin] = {}
    current: tuple[str, str, set[str]] | None = None

    def close() -> None:
        if current:
            name, version, hashes = current
            if not hashes:
                raise BundleError(f"{path}: {name}=={version} has no --hash=sha256 (expected a hash-pinned file; run make lock)")
            pins[name] = Pin(name, version, frozenset(hashes))

    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if pin := _PIN.match(text):
            close()
            current = (normalise(pin.group(1)), pin.group(2), set(_HASH.findall(text)))
        elif text.startswith("--hash=") and current:
            current[2].update(_HASH.findall(text))
        else:
            raise BundleError(f"{path}, line {number}: {line.strip()!r} is not 'name==version' or '--hash=sha256:...'")
    close()
    if not pins:
        raise BundleError(f"{path}: no pinned requirement")
    return pins


def wheels_folder(environ: dict[str, str] | None = None) -> Path:
    """`SERVING_WHEELS`, else the training image's folder."""
    env = os.environ if environ is None else environ
    return Path(env.get(SERVING_WHEELS_ENV) or IMAGE_WHEELS)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def choose_wheels(folder: Path, pins: dict[str, Pin]) -> list[Path]:
    """One checked wheel per pin. Raises BundleError naming the missing, unpinned or altered wheel."""
    if not folder.is_dir():
        raise BundleError(
            f"{folder}: no serving wheels folder (set {SERVING_WHEELS_ENV}; the training image holds them, `make setup` downloads them here)"
        )
    found: dict[str, Path] = {}
    for wheel in sorted(folder.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        pin = pins.get(normalise(name))
        if pin is None or pin.version != version:
            continue  # another project's or an older download: not ours to use
        if _sha256(wheel) not in pin.hashes:
            raise BundleError(f"{wheel}: its sha256 matches none of the hashes pinned for {pin.name}=={pin.version} in {REQUIREMENTS.name}")
        if pin.name in found:
            raise BundleError(f"{folder}: two wheels for {pin.name}=={pin.version} ({found[pin.name].name}, {wheel.name}); keep one")
        found[pin.name] = wheel
    missing = [f"{pin.name}=={pin.version}" for name, pin in pins.items() if name not in found]
    if missing:
        raise BundleError(f"{folder}: no wheel for {', '.join(missing)} (expected the wheels of {REQUIREMENTS}; run make setup)")
    return [found[name] for name in pins]


def bundle(code: Path, folder: Path | None = None, requirements: Path = REQUIREMENTS) -> list[str]:
    """Unpack the pinned wheels into `code/lib` (replacing it); returns `name==version` of each."""
    pins = read_pins(requirements)
    wheels = choose_wheels(wheels_folder() if folder is None else folder, pins)
    lib = code / LIB
    lib.mkdir(parents=True, exist_ok=False)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            if data := [n for n in archive.namelist() if n.split("/", 1)[0].endswith(".data")]:
                raise BundleError(f"{wheel}: holds {data[0]}; a .data folder needs an installer, not unpacking")
        try:
            archives.extract_zip(wheel, lib)
        except archives.UnsafeArchive as exc:
            raise BundleError(f"{wheel}: unsafe path {exc.member!r}: it {exc.problem} (nothing of it was unpacked)") from None
    return [f"{pin.name}=={pin.version}" for pin in pins.values()]  # choose_wheels gave one wheel per pin
