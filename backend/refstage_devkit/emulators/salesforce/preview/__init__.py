"""The rep's view of the emulated org: record pages with the package's real Lightning web components
(``pages``), and the Jest fixtures regenerated from what the org's UI API answers (``fixtures``)."""
