"""NixDeck core project package."""
