"""`parrot launch` and `parrot teleop` find a shipped parameters file by name from any
directory, and name the file when there is none."""

from __future__ import annotations

import pytest

from parrot_cli.main import main as parrot


def test_a_shipped_params_file_is_found_by_name_from_another_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert parrot(["launch", "sim", "driver:=none", "record:=true", "params_file:=teleop.yaml",
                   "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "parrot_bringup.recorder" in out and "config/teleop.yaml" in out


def test_a_missing_params_file_is_named(tmp_path, monkeypatch, capsys):
    pytest.importorskip("rclpy")
    monkeypatch.chdir(tmp_path)
    assert parrot(["launch", "sim", "params_file:=nope.yaml", "--dry-run"]) == 1
    assert "params_file nope.yaml: no such file" in capsys.readouterr().err
