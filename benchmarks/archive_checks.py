#!/usr/bin/env python3
"""What the security checks on a model archive cost, against the work they guard, in one run.

    .venv/bin/python benchmarks/archive_checks.py [--archive MODEL_TAR_GZ] [--repeat 5]

The archive: the one given, else the newest model.tar.gz under .cardamage/ (`make run` writes one: an
EfficientDet-D0 export with its handler's libraries). Each figure is the best of --repeat runs:
- sha256: the deployment function's digest check (`check_archive`) over the archive in 1 MiB chunks, the
  read it adds before deploying; on AWS the archive comes from S3, whose throughput is not measured here;
- member check: `containers/common/archives.checked_members`, every member read and judged before extraction;
- extraction: `extract_tar` (the check, then tarfile's data filter), against the baseline, a bare
  `extractall(filter="data")` as the code did before.
Reported: seconds and MB/s, and the checked extraction's time as a ratio of the bare one.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import best  # noqa: E402

from containers.common.archives import checked_members, extract_tar  # noqa: E402
from containers.deploy.deploy import check_archive, file_chunks  # noqa: E402


def newest_archive() -> Path:
    found = sorted((ROOT / ".cardamage").rglob("model.tar.gz"), key=lambda path: path.stat().st_mtime)
    if not found:
        sys.exit("no model.tar.gz under .cardamage/: run `make run` first, or pass --archive")
    return found[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, help="a model.tar.gz (default: the newest under .cardamage/)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    archive = args.archive or newest_archive()
    size = archive.stat().st_size / 1e6
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()

    def members() -> int:
        with tarfile.open(archive) as tar:
            return len(checked_members(archive, tar))

    with tempfile.TemporaryDirectory(prefix="archive-checks-") as work:
        counter = iter(range(10**6))

        def bare() -> None:
            with tarfile.open(archive) as tar:
                tar.extractall(Path(work) / f"bare-{next(counter)}", filter="data")

        def checked() -> None:
            extract_tar(archive, Path(work) / f"checked-{next(counter)}")

        sha = best(args.repeat, lambda: check_archive(file_chunks, str(archive), digest, 1))
        check = best(args.repeat, members)
        baseline = best(args.repeat, bare)
        guarded = best(args.repeat, checked)
    print(f"archive        {archive} ({size:.1f} MB, {members()} members)")
    print(f"sha256         {sha:.3f} s ({size / sha:.0f} MB/s)")
    print(f"member check   {check:.3f} s")
    print(f"extraction     bare {baseline:.3f} s, checked {guarded:.3f} s: {guarded / baseline:.2f}x")


if __name__ == "__main__":
    main()
