# Shared by every device: remote access for NixDeck deploys and sane Nix settings.
{ config, lib, pkgs, ... }:
{
  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = false;
      PermitRootLogin = "prohibit-password";
    };
  };

  # Put the public keys allowed to deploy here (NixDeck deploys as the inventory's `user`).
  users.users.root.openssh.authorizedKeys.keys = [
    # "ssh-ed25519 AAAA... you@workstation"
  ];

  nix.settings = {
    experimental-features = [ "nix-command" "flakes" ];
    trusted-users = [ "root" "@wheel" ];
  };

  time.timeZone = lib.mkDefault "UTC";
  environment.systemPackages = with pkgs; [ htop vim ];
}
