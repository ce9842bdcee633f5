nix build --json --no-link path:/tmp/nixdeck-samples/01972a/fail#top --log-format internal-json -v
