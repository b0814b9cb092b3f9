"""``--address`` of a Ray cluster that is not there fails at once with a clear error."""

import socket

import pytest

from preproc.errors import ConfigError
from preproc.ray_data import check_address


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_unreachable_address_is_a_config_error():
    port = _closed_port()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(ConfigError, match=f"no Ray cluster answers at --address '{address}'"):
            check_address(address, timeout=2.0)


def test_listening_address_and_other_forms_pass():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        check_address(f"127.0.0.1:{server.getsockname()[1]}", timeout=2.0)
    check_address("auto")  # left to Ray


def test_cli_reports_unreachable_address(tmp_path, capsys):
    from PIL import Image

    from preproc.cli import main

    Image.new("L", (40, 10), 255).save(tmp_path / "a.png")
    rc = main(["enhance", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--engine", "ray",
               "--address", f"127.0.0.1:{_closed_port()}", "--upscaler", "bicubic"])
    assert rc == 2
    assert "no Ray cluster answers at --address" in capsys.readouterr().err
    assert not (tmp_path / "out" / "a.png").exists()
