"""Archives that cannot write outside their folder (containers/common/archives.py), and the programs that unpack
them: a link, a device, an absolute name or `..` refuses the archive before anything is written."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from containers.common import archives
from containers.evaluation.errors import EvaluationError
from containers.evaluation.model import extract_model
from containers.inference import libraries
from containers.inference.libraries import BundleError
from containers.training.train import TrainingError, find_checkpoint
from tests.containers.inference.test_libraries import make_wheel, pin_file


def tar_with(path, *members: tarfile.TarInfo):
    """A model.tar.gz whose first member is a plain file (so a late refusal would already have written it)."""
    with tarfile.open(path, "w:gz") as tar:
        first = tarfile.TarInfo("model.json")
        first.size = 2
        tar.addfile(first, io.BytesIO(b"{}"))
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


UNSAFE = [
    (member("1/variables", tarfile.SYMTYPE, "../../outside"), "is a symbolic link (to '../../outside')"),
    (member("1/inside-link", tarfile.SYMTYPE, "model.json"), "is a symbolic link (to 'model.json')"),  # the data filter lets this one through
    (member("1/hard", tarfile.LNKTYPE, "model.json"), "is a hard link (to 'model.json')"),
    (member("1/tty", tarfile.CHRTYPE), "is a device or a fifo"),
    (member("1/pipe", tarfile.FIFOTYPE), "is a device or a fifo"),
    (member("1/volume", b"V"), "is of tar type b'V', neither a file nor a folder"),  # tarfile would write it as a file
    (member("../outside.txt"), "has a '..' part in its name"),
    (member("1/../../outside.txt"), "has a '..' part in its name"),
    (member("/tmp/absolute.txt"), "has an absolute name"),  # the data filter strips the "/" and extracts it
]


@pytest.mark.parametrize(("unsafe", "problem"), UNSAFE, ids=[m.name for m, _ in UNSAFE])
def test_a_model_archive_holding_a_link_a_device_or_an_escaping_name_is_refused_before_anything_is_written(tmp_path, unsafe, problem):
    archive = tar_with(tmp_path / "model.tar.gz", unsafe)
    target = tmp_path / "work" / "model"
    with pytest.raises(EvaluationError) as refused:
        extract_model(archive, target)
    assert not target.exists() and not (tmp_path / "outside.txt").exists()
    message = str(refused.value)
    assert "refused to extract an unsafe member" in message and str(archive) in message and f"{unsafe.name!r} {problem}" in message
    assert "nothing was extracted" in message


def test_a_safe_model_archive_is_extracted_whole(tmp_path):
    folder = member("1/", tarfile.DIRTYPE)
    archive = tar_with(tmp_path / "model.tar.gz", folder, member("1/saved_model.pb"), member("./code/inference.py"))
    archives.extract_tar(archive, tmp_path / "model")
    extracted = sorted(p.relative_to(tmp_path / "model").as_posix() for p in (tmp_path / "model").rglob("*"))
    assert extracted == ["1", "1/saved_model.pb", "code", "code/inference.py", "model.json"]


def test_the_data_filter_stays_as_a_second_line_for_a_link_already_in_the_target(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "1").symlink_to(tmp_path / "outside")  # left by something else: no member of the archive
    archive = tar_with(tmp_path / "model.tar.gz", member("1/saved_model.pb"))
    with pytest.raises(archives.UnsafeArchive, match=r"'1/saved_model.pb' was refused by tarfile's data filter .*\(extraction stopped there\)"):
        archives.extract_tar(archive, tmp_path / "model")
    assert not (tmp_path / "outside" / "saved_model.pb").exists()


def test_the_pretrained_checkpoint_tarball_is_held_to_the_same_rule(tmp_path):
    zoo = tar_with(tmp_path / "efficientdet_d0_coco17_tpu-32.tar.gz", member("checkpoint/ckpt-0.index", tarfile.SYMTYPE, "/etc/passwd"))
    with pytest.raises(TrainingError, match=r"the pretrained checkpoint cannot be used: .*'checkpoint/ckpt-0.index' is a symbolic link"):
        find_checkpoint(zoo, tmp_path / "work")
    assert not (tmp_path / "work").exists()


def test_a_wheel_holding_a_link_or_an_escaping_name_is_refused_before_code_lib_is_made(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = make_wheel(wheels, "alpha", "1.0", {"alpha/__init__.py": b""})
    with zipfile.ZipFile(wheel, "a") as archive:  # a link entry, as zip tools store one made on Unix
        link = zipfile.ZipInfo("alpha/link.py")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    pins = pin_file(tmp_path / "requirements.txt", (wheel, "alpha", "1.0"))
    with pytest.raises(BundleError, match=r"unsafe path 'alpha/link.py': it is a symbolic link \(nothing of it was unpacked\)"):
        libraries.bundle(tmp_path / "code", wheels, pins)
    assert not (tmp_path / "code" / "lib" / "alpha").exists()

    absolute = tmp_path / "absolute.zip"
    with zipfile.ZipFile(absolute, "w") as archive:
        archive.writestr("ok.txt", "x")
        archive.writestr(zipfile.ZipInfo("/tmp/absolute.txt"), "x")
    with pytest.raises(archives.UnsafeArchive, match=r"unsafe member: '/tmp/absolute.txt' has an absolute name"):
        archives.extract_zip(absolute, tmp_path / "unzipped")
    assert not (tmp_path / "unzipped").exists()


def test_a_name_joined_to_a_folder_stays_inside_it(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "out").symlink_to(tmp_path)
    assert archives.inside(root, "a/b.tfrecord") == root / "a" / "b.tfrecord"
    assert archives.inside(root, "") == root
    for leading_out in ("/etc/passwd", "../x", "a/../../x", "out/x"):
        assert archives.inside(root, leading_out) is None, leading_out
