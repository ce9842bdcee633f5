nix eval --json --show-trace path:/tmp/nixdeck-samples/cbb5a4/type#top --log-format internal-json -v
