"""The README's examples run as written, and its set-up commands are the ones CI runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^( *)```python\n(.*?)^\1```", README, flags=re.S | re.M)


def _dedent(indent: str, code: str) -> str:
    return "\n".join(line[len(indent) :] for line in code.splitlines())


def run_block(indent: str, code: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Run one README block as a script; return its output."""
    script = tmp_path / "example.py"
    script.write_text(_dedent(indent, code), encoding="utf-8")
    env = dict(os.environ)
    # The example runs from a temporary directory: import the package from this tree.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if "REDIS_URL" in code:  # a Redis example: give it a real server of its own
        env["REDIS_URL"] = request.getfixturevalue("own_redis_server").url
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(("indent", "code"), BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(indent: str, code: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert isinstance(run_block(indent, code, tmp_path, request), str)


def test_readme_redis_example_shares_the_limit_and_the_kill_switch(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    ((indent, code),) = [block for block in BLOCKS if "REDIS_URL" in block[1]]
    output = run_block(indent, code, tmp_path, request)
    assert "orders admitted: 10 of 16" in output
    assert "beta can trade: False" in output
    assert "alpha can trade: True" in output
    assert "order sent closed" in output


def test_readme_examples_pass_mypy_strict(tmp_path: Path) -> None:
    """Every Python block type-checks with ``mypy --strict`` as a user's file would, against the package
    as installed (the set-up's editable install must be visible to type checkers)."""
    try:
        import mypy  # noqa: F401, PLC0415 - only to know whether it is installed
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("mypy is missing in CI (it is in the dev extra)")
        pytest.skip("mypy is not installed (pip install -e '.[dev]')")
    files = []
    for number, (indent, code) in enumerate(BLOCKS):
        path = tmp_path / f"readme_block_{number}.py"
        path.write_text(_dedent(indent, code), encoding="utf-8")
        files.append(str(path))
    env = {key: value for key, value in os.environ.items() if key not in ("MYPYPATH", "PYTHONPATH")}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), *files],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 5


def test_ci_runs_the_readme_test_command() -> None:
    setup = README.split("## Set-up", 1)[1].split("```sh", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(setup) == 2
    assert setup[0].endswith("python3 -m circuit_breakers demo")
    assert setup[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_operating_examples_show_what_they_say(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    (indent, metrics), (_, page) = [block for block in BLOCKS if "circuit_breakers.ops" in block[1]]
    assert 'trading_kill_switch_engaged{desk="us"} 1.0' in run_block(indent, metrics, tmp_path, request)
    output = run_block(indent, page, tmp_path, request)
    assert re.search(r"open http://127\.0\.0\.1:\d+/ in a browser\nactive\n", output)


def test_readme_screenshot_exists() -> None:
    assert "](docs/status-page.png)" in README
    assert (ROOT / "docs" / "status-page.png").read_bytes().startswith(b"\x89PNG")
