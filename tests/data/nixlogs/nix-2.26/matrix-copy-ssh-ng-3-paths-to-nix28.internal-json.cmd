nix copy --no-check-sigs --to ssh-ng://root@127.0.0.240 /nix/store/3kygcxq0qgp1phdd9lqvq4p8vcb6zmvf-c-top-01972a --log-format internal-json -v
