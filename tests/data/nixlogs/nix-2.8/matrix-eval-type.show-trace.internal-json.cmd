nix eval --json --show-trace path:/tmp/nixdeck-samples/2e7310/type#top --log-format internal-json -v
