"""NixDeck: build and deploy a fleet of NixOS devices, every operation a tracked task."""

__version__ = "0.1.0"
