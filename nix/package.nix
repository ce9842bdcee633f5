# NixDeck as a Nix package: the Python application from this repository, wrapped for Qt,
# with nix, openssh and git on its PATH (it drives them as subprocesses).
{
  lib,
  python3Packages,
  qt6,
  nix,
  openssh,
  git,
}:

let
  pyproject = builtins.fromTOML (builtins.readFile ../pyproject.toml);
  appId = "io.github.nixdeck.NixDeck";
  # Never copy local build products or a virtualenv into the store.
  ignored = [ ".venv" "build" "dist" "result" "__pycache__" ".mypy_cache" ".ruff_cache" ".pytest_cache" ".hypothesis" ];
in
python3Packages.buildPythonApplication {
  pname = "nixdeck";
  inherit (pyproject.project) version;
  pyproject = true;

  src = lib.cleanSourceWith {
    src = lib.cleanSource ../.;
    filter = path: type:
      let name = baseNameOf path; in
      !(builtins.elem name ignored || lib.hasSuffix ".egg-info" name);
  };

  build-system = with python3Packages; [ setuptools wheel ];

  # Keep in step with [project] dependencies in pyproject.toml (tests/test_packaging.py checks it).
  dependencies = with python3Packages; [
    pyside6
    qasync
    asyncssh
    pydantic
    platformdirs
    orjson
    tomlkit
    cel-python
  ];

  # nixpkgs ships the full PySide6 (same modules) rather than the PySide6-Essentials wheel.
  pythonRemoveDeps = [ "PySide6-Essentials" ];

  nativeBuildInputs = [ qt6.wrapQtAppsHook ];
  buildInputs = [ qt6.qtbase qt6.qtsvg qt6.qtwayland ];

  # Python entry points are wrapped once, by the Python wrapper, with the Qt arguments added.
  dontWrapQtApps = true;
  makeWrapperArgs = [ "--prefix" "PATH" ":" (lib.makeBinPath [ nix openssh git ]) ];
  preFixup = ''
    makeWrapperArgs+=("''${qtWrapperArgs[@]}")
  '';

  postInstall = ''
    install -Dm644 packaging/${appId}.desktop -t $out/share/applications
    install -Dm644 packaging/${appId}.metainfo.xml -t $out/share/metainfo
    install -Dm644 packaging/icons/nixdeck.svg $out/share/icons/hicolor/scalable/apps/${appId}.svg
    for size in 64 128 256; do
      install -Dm644 packaging/icons/hicolor/''${size}x''${size}/apps/${appId}.png \
        -t $out/share/icons/hicolor/''${size}x''${size}/apps
    done
  '';

  # The test suite needs a real nix, sshd and a display-less Qt outside the build sandbox; CI runs it.
  doCheck = false;
  pythonImportsCheck = [ "nixdeck" "nixdeck.core" ];

  meta = {
    description = pyproject.project.description;
    homepage = "https://github.com/nixdeck/nixdeck";
    license = lib.licenses.mit;
    mainProgram = "nixdeck-gui";
    platforms = lib.platforms.linux;
  };
}
