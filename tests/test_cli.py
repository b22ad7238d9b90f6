from __future__ import annotations

import subprocess
import sys
import time

import pytest

from searchprobe import cli


def test_help_is_fast_and_imports_no_torch():
    code = (
        "import sys, time; t=time.perf_counter(); from searchprobe.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'transformer_lens' not in sys.modules, 'heavy import'\n"
        "print(time.perf_counter()-t)"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "verbs:" in out.stdout
    assert time.perf_counter() - start < 5  # interpreter start included; the import itself is far below 1 s
    assert float(out.stdout.strip().splitlines()[-1]) < 1.0


@pytest.mark.parametrize("verb", sorted(cli.COMMANDS))
def test_every_verb_help_imports_no_torch(verb):
    code = (
        "import sys\nfrom searchprobe.cli import main\n"
        f"try:\n    main([{verb!r}, '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


def test_unknown_verb_exits_2(capsys):
    assert cli.main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "error: unknown verb 'frobnicate'" in err


def test_error_is_one_line_and_debug_raises(monkeypatch, capsys):
    import argparse
    import types

    from searchprobe.errors import InputError

    def run(args):
        raise InputError("a must be a positive integer, got -1 (from --a)")

    fake = types.SimpleNamespace(add_arguments=lambda p: None, run=run)
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_module", "test"))
    monkeypatch.setitem(sys.modules, "fake_module", fake)
    assert cli.main(["fake"]) == 2
    err = capsys.readouterr().err
    assert err == "error: a must be a positive integer, got -1 (from --a)\n"
    with pytest.raises(InputError):
        cli.main(["--debug", "fake"])
    assert isinstance(cli.build_verb_parser("fake"), argparse.ArgumentParser)
