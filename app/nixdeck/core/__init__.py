"""NixDeck core package."""
