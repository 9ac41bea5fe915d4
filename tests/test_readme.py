"""CI proves the README: the README's test command is exactly what .ci/run executes."""

import re


def setup_commands(repo):
    readme = (repo / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_readme_has_exactly_two_setup_commands(repo):
    commands = setup_commands(repo)
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    install, tests = commands
    assert install.startswith("pip install") and "veille " in install
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command(repo):
    script = (repo / ".ci" / "run").read_text(encoding="utf-8")
    last_line = script.strip().splitlines()[-1]
    assert last_line == setup_commands(repo)[1]
    assert "set -euo pipefail" in script
