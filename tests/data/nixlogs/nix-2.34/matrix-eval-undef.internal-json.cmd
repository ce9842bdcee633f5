nix eval --json path:/tmp/nixdeck-samples/cbb5a4/undef#top --log-format internal-json -v
