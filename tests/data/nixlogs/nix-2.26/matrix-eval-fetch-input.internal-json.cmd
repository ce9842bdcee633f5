nix eval --json path:/tmp/nixdeck-samples/01972a/uses-input#top --log-format internal-json -v
