"""The development kit, a distribution of its own (refstage-devkit) that production installs leave out: the CRM
emulators, `refstage demo` and `refstage bench`. It may import refstage; refstage never imports it."""
