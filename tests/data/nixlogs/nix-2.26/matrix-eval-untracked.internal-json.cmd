nix eval --json git+file:///tmp/nixdeck-samples/01972a/untracked#top --log-format internal-json -v
