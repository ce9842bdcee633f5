nix build --no-link --json --log-format internal-json -v --show-trace .#nixosConfigurations.bad-type.config.system.build.toplevel  (Nix 2.26.3, tests/fixtures/fleet)
