nix eval --json --show-trace path:/tmp/nixdeck-samples/2e7310/deep#top --log-format internal-json -v
