"""Unpacking archives, and joining names from outside (S3 keys) to folders, so that nothing lands outside the
folder: the one home of the rule.

What is unpacked here (a model.tar.gz, the pretrained checkpoint's tarball, the handler's wheels) needs only
plain files and folders with relative names. So every member is checked before anything is written, and one
that is a link (symbolic or hard), a device or a fifo, or whose name is absolute or has a `..` part refuses
the whole archive. tarfile's "data" filter then runs as a second line, not the only one: this Python (3.11.7)
has known ways around it, fixed in 3.11.13 (CVE-2025-4517 and four others, python/cpython#135034), and later
reports get round it with links (python/cpython#149486, #151558, #157190), which the check refuses.

A name that is not a member (an S3 key listed from a bucket, a key of the local S3) is joined with `inside`:
the joined path, resolved, must stay under its root.

Standard library only: the programs in containers/ use it, and so do the local endpoint and the tests.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

# What reading a damaged or truncated tar archive raises (tarfile lets EOFError and zlib.error through from gzip).
_UNREADABLE = (tarfile.TarError, OSError, EOFError, zlib.error)


class ArchiveError(ValueError):
    """An archive that was not unpacked: unsafe, or unreadable. The message names it."""


class UnsafeArchive(ArchiveError):
    """An archive holds a member that could write outside its folder; the message names both."""

    def __init__(self, archive: Path, member: str, problem: str, *, started: bool = False):
        super().__init__(
            f"{archive}: refused to extract an unsafe member: {member!r} {problem}; an archive unpacked here may hold only "
            f"files and folders with relative names ({'extraction stopped there' if started else 'nothing was extracted'})"
        )
        self.archive, self.member, self.problem = archive, member, problem


def inside(root: Path, name: str) -> Path | None:
    """`root / name` when that path, resolved (links followed), is `root` or under it; None when it leads out:
    an absolute `name` replaces the root when joined, `..` climbs out of it, a link may point anywhere."""
    path = root / name
    return path if path.resolve().is_relative_to(root.resolve()) else None


def name_problem(name: str) -> str | None:
    """Why a member's name cannot be unpacked (absolute, or with a `..` part), or None when it can."""
    path = PurePosixPath(name)
    if path.is_absolute():
        return "has an absolute name"
    if ".." in path.parts:
        return "has a '..' part in its name"
    return None


def _tar_problem(member: tarfile.TarInfo) -> str | None:
    if member.issym():
        return f"is a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"is a hard link (to {member.linkname!r})"
    if member.isdev():
        return "is a device or a fifo"
    if not (member.isfile() or member.isdir()):
        return f"is of tar type {member.type!r}, neither a file nor a folder"
    return name_problem(member.name)


def checked_members(archive: Path, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Every member of `tar`, read to the end before anything is extracted. Raises UnsafeArchive naming the
    archive and the first member that is not a file or folder with a relative name."""
    members = tar.getmembers()
    for member in members:
        if problem := _tar_problem(member):
            raise UnsafeArchive(archive, member.name, problem)
    return members


def extract_tar(archive: Path, target: Path) -> None:
    """Unpack a tar archive (any compression tarfile reads) into `target`, made when the archive passes the
    check. Raises UnsafeArchive (nothing written), or ArchiveError for an archive that cannot be read."""
    try:
        with tarfile.open(archive) as tar:
            members = checked_members(archive, tar)
            target.mkdir(parents=True, exist_ok=True)
            try:
                tar.extractall(target, members=members, filter="data")
            except tarfile.FilterError as exc:  # the second line: only reached if the check above missed something
                raise UnsafeArchive(archive, exc.tarinfo.name, f"was refused by tarfile's data filter ({exc})", started=True) from None
    except _UNREADABLE as exc:
        raise ArchiveError(f"{archive}: cannot be extracted ({exc})") from None


def extract_zip(archive: Path, target: Path) -> None:
    """Unpack a zip archive (a wheel) into `target` by the same rule. zipfile writes a link entry as a file holding
    the link's text, so a link cannot lead out; it is refused all the same, since a wheel holds none."""
    with zipfile.ZipFile(archive) as zipped:
        members = zipped.infolist()
        for member in members:
            if stat.S_ISLNK(member.external_attr >> 16):  # the Unix mode, in the high half when made on Unix
                raise UnsafeArchive(archive, member.filename, "is a symbolic link")
            if problem := name_problem(member.filename):
                raise UnsafeArchive(archive, member.filename, problem)
        target.mkdir(parents=True, exist_ok=True)
        zipped.extractall(target, members)
