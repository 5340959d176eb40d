"""The Chromium that the browser tests drive, and how the repository's own setup installs it.

`make browser` (part of `make test`) runs `python -m tests.browser install`. Where the suite runs decides which
Chromium:
- `CARDAMAGE_CHROMIUM` names one: that one, whatever the system (a user's own build).
- Debian (this project's machines, and CI): Debian's `chromium` package, at /usr/bin/chromium, installed with
  apt-get as root (or `sudo -n`). apt checks the package against the archive's signed index; the version is
  Debian's current security release, not pinned, since an older one leaves the archive when it is replaced.
- Ubuntu (the CI/CD pipeline's CodeBuild image, aws/codebuild/standard:7.0) and anything else: Ubuntu's
  `chromium` is a snap, and /usr/bin/chromium(-browser) there is only a shim that starts the snap, which does not
  run in CodeBuild's containers. There the Chromium build of the pinned Playwright is downloaded
  (`playwright install chromium`, with `--with-deps` as root, which installs its system libraries with apt).

The choice is written to `.venv/browser.json`; the tests read it through `executable()`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

DEBIAN_CHROMIUM = "/usr/bin/chromium"
ENVIRONMENT = "CARDAMAGE_CHROMIUM"
CHOICE_FILE = Path(__file__).resolve().parents[1] / ".venv" / "browser.json"
# Flags for a machine with a closed network and no screen: without the background-networking ones, Chromium
# opens connections to Google's services at every start, which a closed network refuses many at a time.
LAUNCH_ARGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@dataclass(frozen=True)
class Choice:
    """Which Chromium, and how to get it. `executable` None means Playwright's own build (it knows where)."""

    source: str  # "environment", "debian", "playwright"
    executable: str | None
    install: tuple[tuple[str, ...], ...]  # the commands that install it; empty when it is there already
    why: str


def os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    """The os-release(5) fields: KEY=value lines, values optionally quoted."""
    fields: dict[str, str] = {}
    if not path.is_file():
        return fields
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            fields[key.strip()] = value.strip().strip("\"'")
    return fields


def choose(
    release: Mapping[str, str],
    *,
    environ: Mapping[str, str],
    exists: Callable[[str], bool],
    is_root: bool,
    has_sudo: bool,
    python: str = sys.executable,
) -> Choice:
    """The Chromium for this system, and the commands that install it (run by `install`)."""
    named = environ.get(ENVIRONMENT)
    if named:
        if not exists(named):
            raise SystemExit(f"{ENVIRONMENT}={named}: no such file (it names the Chromium the browser tests drive)")
        return Choice("environment", named, (), f"{ENVIRONMENT} names it")
    system = release.get("ID", "")
    debian = system == "debian" or (
        system != "ubuntu" and "debian" in release.get("ID_LIKE", "").split() and "ubuntu" not in release.get("ID_LIKE", "").split()
    )
    if debian:
        if exists(DEBIAN_CHROMIUM):
            return Choice("debian", DEBIAN_CHROMIUM, (), f"Debian's chromium package is installed ({DEBIAN_CHROMIUM})")
        apt = ("apt-get", "install", "-y", "--no-install-recommends", "chromium")
        if is_root:
            return Choice("debian", DEBIAN_CHROMIUM, (("apt-get", "update"), apt), "Debian: its chromium package, installed as root")
        if has_sudo:
            return Choice(
                "debian", DEBIAN_CHROMIUM, (("sudo", "-n", "apt-get", "update"), ("sudo", "-n", *apt)), "Debian: its chromium package, with sudo"
            )
        raise SystemExit(
            "the browser tests need Debian's Chromium: run `sudo apt-get install chromium` (as root: apt-get), "
            f"or set {ENVIRONMENT} to a Chromium you have"
        )
    name = release.get("PRETTY_NAME") or system or "this system"
    command = (python, "-m", "playwright", "install", *(("--with-deps",) if is_root else ()), "chromium")
    return Choice("playwright", None, (command,), f"{name}: no Debian chromium package here (Ubuntu's is a snap), so Playwright's own build")


def install() -> Choice:
    """Install the chosen Chromium and record the choice for the tests."""
    choice = choose(
        os_release(),
        environ=os.environ,
        exists=lambda path: Path(path).is_file() and os.access(path, os.X_OK),
        is_root=os.geteuid() == 0,
        has_sudo=shutil.which("sudo") is not None and subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode == 0,
    )
    for command in choice.install:
        print("browser:", " ".join(command), flush=True)
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(command, check=True, env=environment, stdout=subprocess.DEVNULL if command[-1] == "update" else None)
    CHOICE_FILE.parent.mkdir(parents=True, exist_ok=True)
    CHOICE_FILE.write_text(json.dumps(asdict(choice), indent=1) + "\n", encoding="utf-8")
    print(f"browser: {choice.why} -> {choice.executable or 'Playwright chromium'}")
    return choice


def executable() -> str | None:
    """The Chromium the tests launch (None: Playwright's own), as `make browser` chose it."""
    if os.environ.get(ENVIRONMENT):
        return os.environ[ENVIRONMENT]
    if not CHOICE_FILE.is_file():
        raise RuntimeError(f"no browser chosen yet ({CHOICE_FILE} is missing): run `make browser` (part of `make test`)")
    return json.loads(CHOICE_FILE.read_text(encoding="utf-8"))["executable"]


def launch(playwright):
    """A headless Chromium, the one `make browser` chose."""
    return playwright.chromium.launch(executable_path=executable(), args=list(LAUNCH_ARGS))


def outside_requests(page) -> list[str]:
    """A list that fills with every request the page makes beyond itself: anything but data:, blob:, about: and
    the test's own server on 127.0.0.1 (a self-contained page makes none)."""
    seen: list[str] = []

    def note(request) -> None:
        url = request.url
        if not url.startswith(("data:", "blob:", "about:", "http://127.0.0.1:")):
            seen.append(url)

    page.on("request", note)
    return seen


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        raise SystemExit("usage: python -m tests.browser install")
    install()
