"""The `refstage` console script. Each area registers its own Click group here."""

from __future__ import annotations

import importlib

import click

from refstage import __version__

# (module, attribute) of each command or group; imported lazily so a broken optional area
# does not take the whole CLI down, and `refstage --help` stays fast.
_COMMANDS = {
    "db": ("refstage.adapters.db.cli", "db"),
    "worker": ("refstage.jobs.cli", "worker"),
    "sync": ("refstage.jobs.cli", "sync"),
    "serve": ("refstage.web.cli", "serve"),
    "demo": ("refstage_devkit.demo", "demo"),
    "tenant": ("refstage.services.cli", "tenant"),
    "program": ("refstage.services.cli", "program"),
    "emulator": ("refstage_devkit.emulators.cli", "emulator"),
    "bench": ("refstage_devkit.bench_cli", "bench"),
    "connection": ("refstage.adapters.crm.salesforce.cli", "connection"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module_name, attr = _COMMANDS[name]
        module = importlib.import_module(module_name)
        return getattr(module, attr)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="refstage")
def main() -> None:
    """Refstage: referrals that count only when the CRM says so."""


if __name__ == "__main__":
    main()
