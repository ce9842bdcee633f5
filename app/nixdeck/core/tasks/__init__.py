"""NixDeck core tasks package."""
