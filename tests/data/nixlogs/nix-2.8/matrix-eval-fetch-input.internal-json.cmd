nix eval --json path:/tmp/nixdeck-samples/2e7310/uses-input#top --log-format internal-json -v
