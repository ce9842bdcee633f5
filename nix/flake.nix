{
  description = "NixDeck: build and deploy a fleet of NixOS devices, every operation a tracked task";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: {
        nixdeck = pkgs.callPackage ./package.nix { };
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.nixdeck;
      });

      apps = forAllSystems (pkgs:
        let pkg = self.packages.${pkgs.stdenv.hostPlatform.system}.nixdeck; in
        {
          default = { type = "app"; program = "${pkg}/bin/nixdeck-gui"; };
          cli = { type = "app"; program = "${pkg}/bin/nixdeck"; };
        });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            (pkgs.python3.withPackages (ps: with ps; [
              # the application's dependencies
              pyside6 qasync asyncssh pydantic platformdirs orjson tomlkit cel-python
              # the test tools
              pytest pytest-qt pytest-timeout hypothesis mypy build setuptools wheel
            ]))
            pkgs.ruff
            pkgs.nix
            pkgs.openssh
            pkgs.git
            pkgs.desktop-file-utils
            pkgs.appstream
          ];
          shellHook = ''
            export PYTHONPATH="$PWD/app''${PYTHONPATH:+:$PYTHONPATH}"
            export QT_QPA_PLATFORM="''${QT_QPA_PLATFORM:-offscreen}"
          '';
        };
      });

      checks = forAllSystems (pkgs: {
        nixdeck = self.packages.${pkgs.stdenv.hostPlatform.system}.nixdeck;
      });
    };
}
