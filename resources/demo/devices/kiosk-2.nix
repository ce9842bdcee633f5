# Kiosk 2: a touch screen in the lobby showing the visitor app.
{ mkDevice, ... }:
mkDevice {
  name = "kiosk-2";
  motd = "kiosk-2: lobby display";
  services = [ "sshd.service" "cage-kiosk.service" ];
}
