# The site gateway: routes the kiosks and the sensor hub to the outside world.
{ mkDevice, ... }:
mkDevice {
  name = "gateway";
  motd = "gateway: edge router and VPN endpoint";
  services = [ "sshd.service" "wireguard-wg0.service" "dnsmasq.service" ];
}
