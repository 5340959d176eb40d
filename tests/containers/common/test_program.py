"""How the Processing programs end: the exit status and the one line SageMaker shows as the job's failure."""

from __future__ import annotations

import pytest

from containers.common.program import exit_status


class Refused(Exception):
    pass


def interrupt():
    raise KeyboardInterrupt


def test_each_ending_has_its_status_and_one_line(capsys):
    assert exit_status("job", lambda: None, Refused) == 0
    assert capsys.readouterr().err == ""

    def refuse():
        raise Refused("no usable image")

    assert exit_status("job", refuse, Refused) == 1
    assert capsys.readouterr().err == "job: error: no usable image\n"

    def missing():
        open("/nonexistent/model.tar.gz")  # noqa: SIM115

    assert exit_status("job", missing, Refused, OSError) == 1
    assert capsys.readouterr().err == "job: error: /nonexistent/model.tar.gz: No such file or directory\n"

    assert exit_status("job", interrupt, Refused) == 130
    assert capsys.readouterr().err == "job: interrupted\n"


def test_an_unexpected_error_keeps_its_traceback():
    def bug():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        exit_status("job", bug, Refused)
