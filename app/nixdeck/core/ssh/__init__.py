"""NixDeck core ssh package."""
