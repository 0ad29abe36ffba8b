"""The README's "Replay and calibrate" section shows the real output of the commands written in it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import List, Tuple

import pytest

from circuit_breakers.replay.cli import replay_main, sweep_main

ROOT = Path(__file__).resolve().parents[2]
SECTION = (ROOT / "README.md").read_text(encoding="utf-8").split("## Replay and calibrate", 1)[1].split("\n## ", 1)[0]
EXAMPLES: List[Tuple[str, str]] = re.findall(r"```sh\n(.*?)```\n\n```text\n(.*?)```", SECTION, flags=re.S)


def test_the_section_has_a_replay_and_a_sweep() -> None:
    assert [command.split()[3] for command, _ in EXAMPLES] == ["replay", "sweep"]


def argv_plot(command: str) -> str:
    words = shlex.split(command.replace("\\\n", " "))
    return words[words.index("--plot") + 1]


@pytest.mark.parametrize(("command", "shown"), EXAMPLES, ids=["replay", "sweep"])
def test_the_output_shown_is_what_the_command_prints(
    command: str, shown: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[:3] == ["python3", "-m", "circuit_breakers"]
    plot = argv.index("--plot")
    assert (ROOT / argv[plot + 1]).is_file()  # the committed picture the section shows
    del argv[plot : plot + 2]  # the text without drawing again (matplotlib is optional)
    monkeypatch.chdir(ROOT)
    main = replay_main if argv[3] == "replay" else sweep_main
    assert main(argv[4:]) == 0
    expected = shown.replace(f"\n\nplot written to {argv_plot(command)}\n", "\n")
    assert capsys.readouterr().out == expected
