{
  description = "A NixOS fleet managed with NixDeck";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs, ... }:
    let
      lib = nixpkgs.lib;

      # NixDeck's inventory (targets, tags, deploy options). Tags select module lists in tags/.
      inventory =
        if builtins.pathExists ./nixdeck.toml
        then builtins.fromTOML (builtins.readFile ./nixdeck.toml)
        else { };

      # One module per device: devices/<name>.nix becomes nixosConfigurations.<name>.
      deviceNames = map (lib.removeSuffix ".nix")
        (builtins.attrNames (lib.filterAttrs (file: type: type == "regular" && lib.hasSuffix ".nix" file)
          (builtins.readDir ./devices)));

      # tags/<tag>.nix is a list of modules given to every device with that tag.
      tagModules = name:
        lib.concatMap
          (tag: let file = ./tags + "/${tag}.nix"; in if builtins.pathExists file then import file else [ ])
          (inventory.devices.${name}.tags or [ ]);

      mkDevice = name: lib.nixosSystem {
        specialArgs = { inherit self; };
        modules = [
          ./modules/common.nix
          (./devices + "/${name}.nix")
          { networking.hostName = lib.mkDefault name; }
        ] ++ tagModules name;
      };
    in
    {
      nixosConfigurations = lib.genAttrs deviceNames mkDevice;
    };
}
