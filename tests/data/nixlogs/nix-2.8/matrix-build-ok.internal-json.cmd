nix build --json --no-link path:/tmp/nixdeck-samples/2e7310/ok#top --log-format internal-json -v
