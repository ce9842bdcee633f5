# Modules for devices tagged `monitored` in nixdeck.toml.
[
  ({ ... }: {
    services.prometheus.exporters.node = {
      enable = true;
      openFirewall = true;
    };
  })
]
