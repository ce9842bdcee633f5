# Fake NixOS machinery: builds, without nixpkgs, what a NixOS configuration exposes at the real
# attribute paths (config.networking.hostName, config.system.build.{toplevel,vm,sdImage,isoImage,
# images.<fmt>}, config.formats.<fmt>), so NixDeck can build, copy, switch and run VMs offline.
#
# Runtime knobs of the generated scripts (environment variables):
#   NIXDECK_SIM_ROOT        root under which switch-to-configuration acts (default "/"): it writes
#                           $ROOT/var/lib/nixdeck-sim/{activations,last-<action>} and, for switch|test,
#                           links $ROOT/run/current-system; for switch|boot $ROOT/var/lib/nixdeck-sim/boot-system.
#   NIXDECK_SIM_FAIL_UNITS  space-separated unit names: switch|test report them failed and exit 4.
#   NIXDECK_SIM_VM_SECONDS  the VM script exits 0 after this many seconds (default: runs until SIGTERM).
# sw/bin/reboot reboots a simulated device (see SIM_INIT in nixdeck/core/ssh/simdevice.py): its
# sshd comes back with /run/current-system and /run/booted-system at the boot default.
{ salt ? "", system ? "x86_64-linux" }:
let
  # One derivation built by /bin/sh; `salt` makes fresh store paths for tests that need a real build.
  drv = name: script: builtins.derivation {
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" script ];
    PATH = "/usr/bin:/bin";
    nixdeckSalt = salt;
  };

  # Shared by every device, so closures overlap as they do on a real fleet.
  base = drv "nixdeck-sim-base-1.0" ''
    mkdir -p $out/bin $out/share/nixdeck-sim
    printf '#!/bin/sh\necho "nixdeck-sim base 1.0"\n' > $out/bin/nixdeck-sim-base
    chmod +x $out/bin/nixdeck-sim-base
    echo "shared base package" > $out/share/nixdeck-sim/README
  '';

  switchScript = { hostName, failedUnits }: ''
    #!/bin/sh
    # switch-to-configuration of a simulated NixOS system (NixDeck test fleet).
    set -u
    action="''${1:-}"
    toplevel="@out@"
    case "$action" in
      switch|boot|test|dry-activate) ;;
      *) echo "Usage: $0 [switch|boot|test|dry-activate]" >&2; exit 1 ;;
    esac
    root="''${NIXDECK_SIM_ROOT:-/}"
    state="$root/var/lib/nixdeck-sim"
    mkdir -p "$state" "$root/run"
    echo "$action $toplevel" >> "$state/activations"
    echo "$toplevel" > "$state/last-$action"
    if [ "$action" = dry-activate ]; then
      echo "would start the following units: nixdeck-sim-${hostName}.service"
      exit 0
    fi
    if [ "$action" = switch ] || [ "$action" = boot ]; then
      echo "updating GRUB 2 menu..."
      ln -sfn "$toplevel" "$state/boot-system"
    fi
    if [ "$action" = switch ] || [ "$action" = test ]; then
      echo "activating the configuration..."
      echo "setting up /etc..."
      ln -sfn "$toplevel" "$root/run/current-system"
      echo "reloading user units for root..."
      echo "restarting the following units: nixdeck-sim-${hostName}.service"
      failed="${failedUnits} ''${NIXDECK_SIM_FAIL_UNITS:-}"
      failed="$(echo $failed)"
      if [ -n "$failed" ]; then
        for u in $failed; do echo "Job for $u failed because the control process exited with error code." >&2; done
        echo "warning: the following units failed: $(echo $failed | sed 's/ /, /g')" >&2
        exit 4
      fi
    fi
    exit 0
  '';

  vmScript = hostName: ''
    #!/bin/sh
    # Simulated NixOS VM of ${hostName}: prints a boot log, then a line a second until SIGTERM/SIGINT.
    pid=""
    stop() {
      if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
      echo "${hostName}: received signal, powering off"
      exit 0
    }
    trap stop TERM INT
    echo "Booting ${hostName} (simulated NixOS VM, system @toplevel@)"
    echo "<<< Welcome to NixOS (${hostName}) - ttyS0 >>>"
    echo "${hostName} login: "
    i=0
    limit="''${NIXDECK_SIM_VM_SECONDS:-0}"
    while :; do
      i=$((i + 1))
      echo "${hostName}: uptime ''${i}s"
      if [ "$limit" -gt 0 ] && [ "$i" -ge "$limit" ]; then echo "${hostName}: powered off"; exit 0; fi
      sleep 1 &
      pid=$!
      wait "$pid"
      pid=""
    done
  '';

  # A derivation writing one image file that embeds the toplevel path (so the image's closure holds it).
  image = { hostName, toplevel, pname, file, kib ? 64 }: drv "nixos-image-${pname}-${hostName}" ''
    mkdir -p "$out/$(dirname ${file})"
    { echo "NIXDECK-SIM-IMAGE ${pname} ${hostName}"; echo "${toplevel}"; head -c ${toString (kib * 1024)} /dev/zero; } > "$out/${file}"
    mkdir -p $out/nix-support
    echo "file ${pname} $out/${file}" > $out/nix-support/hydra-build-products
  '';
in
rec {
  inherit drv base;

  # A fake NixOS configuration. `buildScript` runs inside the device's sw build (extra log lines,
  # sleeps, failures); `failedUnits` makes switch/test exit 4; `motd` ends up in /etc/motd.
  mkDevice =
    { name
    , hostName ? name
    , motd ? "Welcome to ${hostName}"
    , packages ? [ ]
    , buildScript ? ""
    , failedUnits ? [ ]
    , services ? [ "sshd.service" "nixdeck-sim-${hostName}.service" ]
    }:
    let
      sw = drv "nixos-system-${hostName}-sw" ''
        ${buildScript}
        mkdir -p $out/bin
        ln -s ${base}/bin/nixdeck-sim-base $out/bin/nixdeck-sim-base
        ${builtins.concatStringsSep "\n" (map (p: "ln -s ${p} $out/${baseNameOf p}") packages)}
        printf '#!/bin/sh\necho "hello from ${hostName}"\n' > $out/bin/hello-${hostName}
        chmod +x $out/bin/hello-${hostName}
        cat > $out/bin/reboot <<'NIXDECK_EOF'
        #!/bin/sh
        # reboot of a simulated device: only inside a device's own PID namespace, whose init
        # (NixDeck's sim init) brings sshd back with the boot default system, as a boot would
        if ! grep -q sim-init /proc/1/cmdline 2>/dev/null || [ ! -d /var/lib/nixdeck-sim ]; then
          echo "reboot: not a simulated NixDeck device; refusing" >&2
          exit 1
        fi
        : > /var/lib/nixdeck-sim/reboot-requested
        ( sleep 0.3; kill -TERM -1 ) </dev/null >/dev/null 2>&1 &
        echo "rebooting"
        NIXDECK_EOF
        chmod +x $out/bin/reboot
      '';
      etc = drv "etc-${hostName}" ''
        mkdir -p $out/etc/nixdeck-sim
        echo "${hostName}" > $out/etc/hostname
        cat > $out/etc/motd <<'NIXDECK_EOF'
        ${motd}
        NIXDECK_EOF
        echo "${builtins.concatStringsSep " " services}" > $out/etc/nixdeck-sim/units
      '';
      toplevel = drv "nixos-system-${hostName}-25.05.20250101.nixdeck" ''
        mkdir -p $out/bin
        ln -s ${etc}/etc $out/etc
        ln -s ${sw} $out/sw
        echo "25.05.20250101.nixdeck (Warbler)" > $out/nixos-version
        echo "${system}" > $out/system
        printf '#!/bin/sh\necho "activating ${hostName}"\n' > $out/activate
        chmod +x $out/activate
        cat > $out/bin/switch-to-configuration <<'NIXDECK_EOF'
        ${switchScript { inherit hostName; failedUnits = builtins.concatStringsSep " " failedUnits; }}
        NIXDECK_EOF
        sed -i "s|@out@|$out|" $out/bin/switch-to-configuration
        chmod +x $out/bin/switch-to-configuration
      '';
      vm = drv "nixos-vm" ''
        mkdir -p $out/bin
        cat > $out/bin/run-${hostName}-vm <<'NIXDECK_EOF'
        ${vmScript hostName}
        NIXDECK_EOF
        sed -i "s|@toplevel@|${toplevel}|" $out/bin/run-${hostName}-vm
        chmod +x $out/bin/run-${hostName}-vm
        ln -s ${toplevel} $out/system
      '';
      img = pname: file: image { inherit hostName toplevel pname file; };
      images = {
        qcow2 = img "qcow2" "nixos.qcow2";
        raw = img "raw" "nixos.img";
        iso = img "iso" "iso/nixos-${hostName}.iso";
        sd-card = img "sd-card" "sd-image/nixos-${hostName}.img";
      };
    in
    {
      _type = "configuration";
      config = {
        networking.hostName = hostName;
        system.build = {
          inherit toplevel vm images;
          sdImage = images.sd-card;
          isoImage = images.iso;
        };
        formats = {
          qcow = images.qcow2;
          raw = images.raw;
          iso = images.iso;
          sd-aarch64 = images.sd-card;
        };
      };
    };
}
