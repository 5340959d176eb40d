"""`make browser` picks the Chromium for the system it runs on (tests/browser.py): Debian's package on Debian,
Playwright's own build on Ubuntu (CodeBuild), where /usr/bin/chromium is a shim that starts a snap; and the one it
chose here starts and renders a page."""

from __future__ import annotations

import pytest

from tests import browser

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nID=debian\n'
UBUNTU = 'NAME="Ubuntu"\nVERSION="22.04.4 LTS (Jammy Jellyfish)"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'
RASPBIAN = "ID=raspbian\nID_LIKE=debian\n"
FEDORA = 'ID=fedora\nPRETTY_NAME="Fedora Linux 41"\n'


def release(tmp_path, text):
    path = tmp_path / "os-release"
    path.write_text(text)
    return browser.os_release(path)


def pick(tmp_path, text, *, present=(), root=True, sudo=False, environ=None):
    return browser.choose(
        release(tmp_path, text), environ=environ or {}, exists=set(present).__contains__, is_root=root, has_sudo=sudo, python="python"
    )


def test_os_release_is_read_with_its_quotes_and_comments(tmp_path):
    fields = release(tmp_path, "# a comment\nID=ubuntu\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nVERSION_ID='22.04'\n\n")
    assert fields == {"ID": "ubuntu", "PRETTY_NAME": "Ubuntu 22.04.4 LTS", "VERSION_ID": "22.04"}
    assert browser.os_release(tmp_path / "missing") == {}


def test_debian_with_its_chromium_installed_uses_it_and_installs_nothing(tmp_path):
    choice = pick(tmp_path, DEBIAN, present=[browser.DEBIAN_CHROMIUM])
    assert (choice.source, choice.executable, choice.install) == ("debian", "/usr/bin/chromium", ())


@pytest.mark.parametrize(("root", "sudo", "prefix"), [(True, False, ()), (False, True, ("sudo", "-n"))])
def test_debian_without_it_installs_debians_package_as_root_or_with_sudo(tmp_path, root, sudo, prefix):
    for text in (DEBIAN, RASPBIAN):  # a derivative that is not Ubuntu has Debian's package too
        choice = pick(tmp_path, text, root=root, sudo=sudo)
        assert choice.source == "debian" and choice.executable == browser.DEBIAN_CHROMIUM
        assert choice.install == ((*prefix, "apt-get", "update"), (*prefix, "apt-get", "install", "-y", "--no-install-recommends", "chromium"))


def test_debian_without_root_or_sudo_says_the_command_to_run(tmp_path):
    with pytest.raises(SystemExit, match="sudo apt-get install chromium"):
        pick(tmp_path, DEBIAN, root=False, sudo=False)


def test_ubuntu_takes_playwrights_build_even_where_a_snap_shim_sits_at_usr_bin_chromium(tmp_path):
    choice = pick(tmp_path, UBUNTU, present=[browser.DEBIAN_CHROMIUM, "/usr/bin/chromium-browser"])
    assert choice.source == "playwright" and choice.executable is None
    assert choice.install == (("python", "-m", "playwright", "install", "--with-deps", "chromium"),)  # root: its libraries with apt too
    assert "Ubuntu 22.04.4 LTS" in choice.why and "snap" in choice.why
    assert pick(tmp_path, UBUNTU, root=False).install == (("python", "-m", "playwright", "install", "chromium"),)


def test_another_system_takes_playwrights_build(tmp_path):
    assert pick(tmp_path, FEDORA).source == "playwright"
    assert pick(tmp_path, "").source == "playwright"  # no os-release at all


def test_a_chromium_named_in_the_environment_wins_and_must_exist(tmp_path):
    named = {browser.ENVIRONMENT: "/opt/chromium/chrome"}
    choice = pick(tmp_path, UBUNTU, present=["/opt/chromium/chrome"], environ=named)
    assert (choice.source, choice.executable, choice.install) == ("environment", "/opt/chromium/chrome", ())
    with pytest.raises(SystemExit, match="CARDAMAGE_CHROMIUM=/opt/chromium/chrome: no such file"):
        pick(tmp_path, DEBIAN, environ=named)


def test_the_chosen_chromium_renders_a_page_and_runs_its_script(chromium):
    page = chromium.new_page()
    try:
        page.set_content("<p id='said'>before</p><button onclick=\"document.getElementById('said').textContent = 'clicked'\">go</button>")
        page.click("button")
        assert page.text_content("#said") == "clicked"
    finally:
        page.close()
