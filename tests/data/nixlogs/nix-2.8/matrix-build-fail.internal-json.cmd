nix build --json --no-link path:/tmp/nixdeck-samples/2e7310/fail#top --log-format internal-json -v
