"""NixDeck ui package."""
