"""The guard of `mgt ui` (mgt/ui/app.py): which host names count as loopback."""

from __future__ import annotations

import pytest

from mgt.ui.app import _host_name, is_loopback


@pytest.mark.parametrize(("header", "loopback"), [
    ("127.0.0.1:8765", True), ("127.0.0.2:8765", True), ("localhost:8765", True),
    ("LOCALHOST", True), ("[::1]:8765", True), ("[::1]", True),
    ("attacker.example:8765", False), ("127.0.0.1.nip.io:8765", False),
    ("10.0.0.5:8765", False), ("[::2]:8765", False), ("", False),
])
def test_a_host_header_is_loopback_only_when_it_names_this_machine(header: str,
                                                                   loopback: bool) -> None:
    assert is_loopback(_host_name(header)) is loopback
