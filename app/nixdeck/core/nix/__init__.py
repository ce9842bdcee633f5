"""NixDeck core nix package."""
