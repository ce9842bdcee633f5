# A web server: nginx with the firewall open for HTTP and HTTPS.
{ config, lib, pkgs, ... }:
{
  services.nginx = {
    enable = true;
    virtualHosts.default = {
      default = true;
      locations."/".return = "200 'Hello from ${config.networking.hostName}\\n'";
    };
  };
  networking.firewall.allowedTCPPorts = [ 80 443 ];
}
