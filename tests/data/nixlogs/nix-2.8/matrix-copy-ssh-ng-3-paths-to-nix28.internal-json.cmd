nix copy --no-check-sigs --to ssh-ng://root@127.0.0.240 /nix/store/934hh7s0h0lyjqnzn5qz6z6zh37ibcg3-c-top-2e7310 --log-format internal-json -v
