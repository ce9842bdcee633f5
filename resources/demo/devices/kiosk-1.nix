# Kiosk 1: a touch screen in the lobby showing the visitor app.
{ mkDevice, ... }:
mkDevice {
  name = "kiosk-1";
  motd = "kiosk-1: lobby display";
  services = [ "sshd.service" "cage-kiosk.service" ];
}
