"""The workspace commands on a fresh checkout: a polite refusal that creates nothing, an unmigrated
database named as such, the demo's database found when run beside it, and help on every command."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from refstage.cli import main


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    for name in ("DATABASE_URL", "REFSTAGE_INSTANCE_DIR", "REFSTAGE_ENV", "SECRET_KEY", "REFSTAGE_ENCRYPTION_KEYS"):
        monkeypatch.setenv(name, "")  # recorded, so whatever a command sets is undone afterwards
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_no_database_is_a_polite_refusal_that_creates_nothing(fresh):
    result = CliRunner().invoke(main, ["tenant", "list"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "refstage db upgrade" in result.output and "Nothing was created" in result.output
    assert list(fresh.iterdir()) == []


def test_an_unmigrated_database_is_named(fresh):
    (fresh / "instance").mkdir()
    (fresh / "instance" / "refstage.db").touch()
    result = CliRunner().invoke(main, ["tenant", "list"])
    assert result.exit_code == 1 and "not migrated yet" in result.output


def test_the_demos_database_is_found_beside_it(fresh, monkeypatch):
    from refstage.adapters.db.migrate import upgrade

    demo = fresh / "instance" / "demo"
    demo.mkdir(parents=True)
    upgrade(f"sqlite:///{demo / 'refstage.db'}")
    result = CliRunner().invoke(main, ["tenant", "list"])
    assert result.exit_code == 0, result.output
    assert "Using the demo's database" in result.output


def _every_command() -> list[tuple[list[str], click.Command]]:
    """`refstage` and every command below it, each with the words that invoke it."""
    ctx = click.Context(main)

    def walk(cmd, path):
        yield path, cmd
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, name), [*path, name])

    return list(walk(main, ["refstage"]))


def test_every_command_has_help():
    missing = [" ".join(path) for path, cmd in _every_command() if not (cmd.help or cmd.short_help)]
    assert missing == []


def test_every_option_has_help():
    """`refstage emulator salesforce --help` and the rest explain each option, not only name it."""
    missing = [f"{' '.join(path)} {p.opts[0]}" for path, cmd in _every_command()
               for p in cmd.params if isinstance(p, click.Option) and not p.help]
    assert missing == []


CONNECTION_COMMANDS = ["add-pipedrive", "add-salesforce", "disconnect", "external-client-app", "finish",
                       "finish-pipedrive", "install-push-path", "list", "push-url", "rotate-push-key"]


def test_the_connection_group_lists_its_commands_and_each_one_resolves():
    """The commands the README and docs/install-salesforce.md quote, wherever the group's module lives."""
    result = CliRunner().invoke(main, ["connection", "--help"], prog_name="refstage")
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.split("Commands:\n", 1)[1].splitlines() if line.strip()]
    assert listed == CONNECTION_COMMANDS
    for name in CONNECTION_COMMANDS:
        sub = CliRunner().invoke(main, ["connection", name, "--help"], prog_name="refstage")
        assert sub.exit_code == 0, sub.output
        assert sub.output.startswith(f"Usage: refstage connection {name} "), sub.output
