{
  description = "NixDeck demo fleet: simulated NixOS devices that build offline, without nixpkgs (see lib.nix)";

  inputs = { };

  outputs = { self }:
    let
      fleet = import ./lib.nix { };
      files = builtins.attrNames (builtins.readDir ./devices);
      isModule = f: builtins.match "[A-Za-z_][A-Za-z0-9_'-]*\\.nix" f != null;
      nameOf = f: builtins.head (builtins.match "(.*)\\.nix" f);
    in
    {
      # One device per devices/<name>.nix.
      nixosConfigurations = builtins.listToAttrs (map
        (f: { name = nameOf f; value = import (./devices + "/${f}") fleet; })
        (builtins.filter isModule files));
    };
}
