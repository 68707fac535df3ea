"""`refstage emulator salesforce|pipedrive`: the local CRM stand-ins."""

from __future__ import annotations

import importlib

import click

_EMULATORS = {
    "salesforce": ("refstage_devkit.emulators.salesforce.cli", "salesforce"),
    "pipedrive": ("refstage_devkit.emulators.pipedrive.cli", "pipedrive"),
}


class _EmulatorGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_EMULATORS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _EMULATORS:
            return None
        module_name, attr = _EMULATORS[name]
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=_EmulatorGroup)
def emulator() -> None:
    """Run a local CRM emulator (Salesforce or Pipedrive) over HTTPS."""
