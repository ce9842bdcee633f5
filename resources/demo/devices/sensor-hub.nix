# Collects the building's sensor readings and forwards them to the gateway.
{ mkDevice, ... }:
mkDevice {
  name = "sensor-hub";
  motd = "sensor-hub: MQTT broker and sensor reader";
  services = [ "sshd.service" "mosquitto.service" "sensor-reader.service" ];
}
