nix eval --json path:/tmp/nixdeck-samples/cbb5a4/uses-input#top --log-format internal-json -v
