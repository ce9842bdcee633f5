nix eval --json path:/tmp/nixdeck-samples/2e7310/undef#top --log-format internal-json -v
