nix build --json --no-link path:/tmp/nixdeck-samples/cbb5a4/ok#top --log-format internal-json -v
