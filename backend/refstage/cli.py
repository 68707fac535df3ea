"""The `refstage` console script. Each area registers its own Click group here; other distributions (the
development kit: `demo`, `emulator`, `bench`) add theirs through the `refstage.commands` entry-point group."""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points

import click

from refstage import __version__

# (module, attribute) of each command or group; imported lazily so a broken optional area
# does not take the whole CLI down, and `refstage --help` stays fast.
_COMMANDS = {
    "db": ("refstage.adapters.db.cli", "db"),
    "worker": ("refstage.jobs.cli", "worker"),
    "sync": ("refstage.jobs.cli", "sync"),
    "serve": ("refstage.web.cli", "serve"),
    "tenant": ("refstage.services.cli", "tenant"),
    "program": ("refstage.services.cli", "program"),
    "connection": ("refstage.services.connection_cli", "connection"),
}
PLUGIN_GROUP = "refstage.commands"


def _plugins() -> dict[str, EntryPoint]:
    """Commands of installed add-ons; a product command keeps its name if an add-on reuses it."""
    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in _COMMANDS}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*_COMMANDS, *_plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _COMMANDS:
            module_name, attr = _COMMANDS[name]
            return getattr(importlib.import_module(module_name), attr)
        plugin = _plugins().get(name)
        return plugin.load() if plugin is not None else None


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="refstage")
def main() -> None:
    """Refstage: referrals that count only when the CRM says so."""


if __name__ == "__main__":
    main()
