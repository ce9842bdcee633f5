nix eval --json git+file:///tmp/nixdeck-samples/cbb5a4/untracked#top --log-format internal-json -v
