"""code/lib: the handler's libraries unpacked from hash-checked wheels (containers/inference/libraries.py)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from containers.inference import libraries
from containers.inference.libraries import BundleError


def make_wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    wheel = folder / f"{name}-{version}-cp312-cp312-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for member, data in {**files, f"{name}-{version}.dist-info/METADATA": b"Name: x\n"}.items():
            archive.writestr(member, data)
    return wheel


def pin_file(path: Path, *wheels: tuple[Path, str, str]) -> Path:
    lines = []
    for wheel, name, version in wheels:
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines += [f"{name}=={version} \\", f"    --hash=sha256:{'0' * 64} \\", f"    --hash=sha256:{digest}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_pinned_wheels_are_unpacked_into_code_lib(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    one = make_wheel(wheels, "alpha_lib", "1.0", {"alpha_lib/__init__.py": b"A = 1\n"})
    two = make_wheel(wheels, "beta", "2.0", {"beta.py": b"B = 2\n"})
    make_wheel(wheels, "beta", "1.9", {"beta.py": b"old\n"})  # another version beside it is not ours to use
    pins = pin_file(tmp_path / "requirements.txt", (one, "alpha-lib", "1.0"), (two, "beta", "2.0"))
    code = tmp_path / "code"
    assert libraries.bundle(code, wheels, pins) == ["alpha-lib==1.0", "beta==2.0"]
    assert (code / "lib" / "alpha_lib" / "__init__.py").read_text() == "A = 1\n"
    assert (code / "lib" / "beta.py").read_text() == "B = 2\n"


def test_an_altered_missing_or_doubled_wheel_is_refused_by_name(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    one = make_wheel(wheels, "alpha", "1.0", {"alpha.py": b"A = 1\n"})
    pins = pin_file(tmp_path / "requirements.txt", (one, "alpha", "1.0"))
    make_wheel(wheels, "alpha", "1.0", {"alpha.py": b"A = 2  # not what was pinned\n"})
    with pytest.raises(BundleError, match=r"alpha-1.0-.*\.whl: its sha256 matches none of the hashes pinned for alpha==1.0"):
        libraries.bundle(tmp_path / "code", wheels, pins)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BundleError, match=r"no wheel for alpha==1.0 .*run make setup"):
        libraries.bundle(tmp_path / "code2", empty, pins)
    with pytest.raises(BundleError, match=r"no serving wheels folder \(set SERVING_WHEELS"):
        libraries.bundle(tmp_path / "code3", tmp_path / "nowhere", pins)


def test_a_wheel_that_needs_an_installer_or_escapes_is_refused(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    data = make_wheel(wheels, "gamma", "1.0", {"gamma-1.0.data/scripts/run": b"#!/bin/sh\n"})
    with pytest.raises(BundleError, match=r"holds gamma-1.0.data/scripts/run; a .data folder needs an installer"):
        libraries.bundle(tmp_path / "code", wheels, pin_file(tmp_path / "r.txt", (data, "gamma", "1.0")))
    data.unlink()
    escape = make_wheel(wheels, "delta", "1.0", {"../outside.py": b"x\n"})
    with pytest.raises(BundleError, match=r"unsafe path '../outside.py'"):
        libraries.bundle(tmp_path / "code2", wheels, pin_file(tmp_path / "r2.txt", (escape, "delta", "1.0")))
    assert not (tmp_path / "outside.py").exists()


def test_a_requirements_file_without_hashes_or_with_other_lines_is_refused(tmp_path):
    bare = tmp_path / "bare.txt"
    bare.write_text("numpy==2.0\n")
    with pytest.raises(BundleError, match=r"bare.txt: numpy==2.0 has no --hash=sha256"):
        libraries.read_pins(bare)
    odd = tmp_path / "odd.txt"
    odd.write_text(f"numpy==2.0 --hash=sha256:{'a' * 64}\n-e ./local\n")
    with pytest.raises(BundleError, match=r"odd.txt, line 2: '-e ./local' is not"):
        libraries.read_pins(odd)


def test_the_real_pins_find_the_wheels_make_setup_downloaded():
    folder = libraries.wheels_folder()
    chosen = libraries.choose_wheels(folder, libraries.read_pins())
    assert [wheel.name.split("-")[0] for wheel in chosen] == ["numpy", "pillow"]
    assert all("-cp312-" in wheel.name for wheel in chosen)
