# Modules for devices tagged `web` in nixdeck.toml.
[
  ../modules/web-server.nix
]
