nix eval --json git+file:///tmp/nixdeck-samples/2e7310/untracked#top --log-format internal-json -v
