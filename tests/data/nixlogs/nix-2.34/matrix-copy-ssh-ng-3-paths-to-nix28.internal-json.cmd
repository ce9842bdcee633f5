nix copy --no-check-sigs --to ssh-ng://root@127.0.0.240 /nix/store/6zi5a0886azchhy5dymblqfzhgjvmkrj-c-top-cbb5a4 --log-format internal-json -v
