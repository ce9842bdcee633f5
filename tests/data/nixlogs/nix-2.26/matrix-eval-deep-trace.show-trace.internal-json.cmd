nix eval --json --show-trace path:/tmp/nixdeck-samples/01972a/deep#top --log-format internal-json -v
