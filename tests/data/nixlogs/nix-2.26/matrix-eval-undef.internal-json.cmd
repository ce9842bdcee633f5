nix eval --json path:/tmp/nixdeck-samples/01972a/undef#top --log-format internal-json -v
